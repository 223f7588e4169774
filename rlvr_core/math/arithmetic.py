"""The demo's verifiable task: 3-digit addition with a fixed-width answer, and its verifier.

A problem is two operands in [0, 999], written zero-padded ("007+512="); the answer is the sum written
with exactly four digits ("0519"). The reward is 1 when the completion (the text the model wrote before
its end-of-sequence token) equals the answer exactly, else 0: a verifiable reward in the RLVR sense.

`make_splits` draws disjoint sets from the 10^6 operand pairs with a fixed seed: a finite pool of
training prompts (GRPO samples only these, so training reward and held-out accuracy can come apart), a
held-out test set, and a validation set used only to stop the supervised warm-up. Plain Python: no torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .grading import grade_exact

OPERAND_DIGITS = 3
ANSWER_DIGITS = 4
N_PAIRS = 10 ** (2 * OPERAND_DIGITS)
NAME = "arithmetic"
"""The dataset name under which the demo's test set is known."""


@dataclass(frozen=True)
class Problem:
    """One addition problem: `a + b`."""

    a: int
    b: int

    @property
    def id(self) -> str:
        return f"{self.a:03d}+{self.b:03d}"

    @property
    def prompt(self) -> str:
        """What the model is given: `aaa+bbb=`."""
        return f"{self.a:0{OPERAND_DIGITS}d}+{self.b:0{OPERAND_DIGITS}d}="

    @property
    def answer(self) -> str:
        """The gold completion: the sum with exactly four digits."""
        return f"{self.a + self.b:0{ANSWER_DIGITS}d}"


@dataclass(frozen=True)
class Splits:
    """Disjoint problem sets of the demo."""

    pool: list[Problem]
    """The finite pool of training prompts for GRPO."""
    test: list[Problem]
    """The held-out test set (greedy accuracy on it is the demo's `eval_accuracy`)."""
    val: list[Problem]
    """Used only to decide when the supervised warm-up stops."""


def verify(completion: str, answer: str) -> bool:
    """The verifier: the completion, stripped of surrounding whitespace, equals the answer exactly."""
    return grade_exact(completion, answer)


def reward(completion: str, answer: str) -> float:
    """1.0 for a verified answer, else 0.0."""
    return 1.0 if verify(completion, answer) else 0.0


def make_splits(seed: int, n_pool: int = 512, n_test: int = 1000, n_val: int = 256) -> Splits:
    """Draw the pool, test and validation sets (disjoint) from all operand pairs."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(N_PAIRS, size=n_pool + n_test + n_val, replace=False)
    problems = [_decode(int(c)) for c in codes]
    return Splits(pool=problems[:n_pool], test=problems[n_pool : n_pool + n_test], val=problems[n_pool + n_test :])


def stream(seed: int, exclude: Splits) -> Iterator[Problem]:
    """An endless seeded stream of problems for supervised warm-up, none of them in the test or
    validation sets (pool problems may appear: the base has seen the training distribution)."""
    rng = np.random.default_rng(seed)
    held_out = {p.id for p in exclude.test} | {p.id for p in exclude.val}
    while True:
        for code in rng.integers(0, N_PAIRS, size=4096):
            problem = _decode(int(code))
            if problem.id not in held_out:
                yield problem


def as_records(problems: list[Problem]) -> list[dict]:
    """Problems as JSON-ready rows (`id`, `problem`, `answer`), the shape of a JSONL benchmark."""
    return [{"id": p.id, "problem": p.prompt, "answer": p.answer} for p in problems]


def _decode(code: int) -> Problem:
    return Problem(code // 10**OPERAND_DIGITS, code % 10**OPERAND_DIGITS)
