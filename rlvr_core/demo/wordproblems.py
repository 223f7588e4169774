"""Generated arithmetic word problems for the real-model demo (`rlvr demo --model smollm2`): one-step
additions, subtractions and small multiplications told as short stories ("Ana has 14 pens and gets 5
more. How many pens does Ana have now?"), each with a whole-number answer checked by math-verify.

Why generated rather than GSM8K: SmolLM2-135M-Instruct solves almost no GSM8K problem (their solutions
need several steps and long completions, too slow to sample on a CPU), while these one-step stories are
at its edge (about a quarter right greedy before training), which leaves GRPO room to improve and keeps
completions short. The pool and the held-out test set are disjoint by question text; everything is
seeded. Plain Python: no torch.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

NAMES = ("Ana", "Tom", "Li", "Sam", "Maya", "Omar", "Eva", "Raj", "Zoe", "Ben", "Ines", "Kofi")
INSTRUCTION = "Put the final answer within \\boxed{}."
"""Said after each question (the JSONL rows carry it as `instruction`, so `rlvr compare` prompts exactly as
training did). Shorter than the default math instruction's "reason step by step", which makes this model
write past any completion budget a CPU can afford."""
THINGS = ("apples", "books", "coins", "pens", "stickers", "marbles", "cards", "shells", "stamps", "cookies")


@dataclass(frozen=True)
class WordProblem:
    question: str
    answer: str


def _one(rng: random.Random) -> WordProblem:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    kind = rng.choice(("add", "add", "sub", "sub", "mul"))
    if kind == "add":
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        text = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
        return WordProblem(text, str(a + b))
    if kind == "sub":
        a, b = sorted((rng.randint(2, 20), rng.randint(2, 20)), reverse=True)
        text = f"{name} has {a} {thing} and gives away {b}. How many {thing} does {name} have left?"
        return WordProblem(text, str(a - b))
    a, b = rng.randint(2, 6), rng.randint(2, 6)
    text = f"{name} has {a} boxes with {b} {thing} in each box. How many {thing} does {name} have?"
    return WordProblem(text, str(a * b))


def make_splits(seed: int, n_pool: int, n_test: int) -> tuple[list[WordProblem], list[WordProblem]]:
    """(pool, test): `n_pool` training and `n_test` held-out problems, disjoint by question text."""
    rng, seen = random.Random(seed), set()
    problems: list[WordProblem] = []
    while len(problems) < n_pool + n_test:
        problem = _one(rng)
        if problem.question not in seen:
            seen.add(problem.question)
            problems.append(problem)
    return problems[:n_pool], problems[n_pool:]


def write_jsonl(path: Path, problems: list[WordProblem]) -> Path:
    """The problems as an evaluation set (`id`, `problem`, `answer`, `instruction` per line), for
    `rlvr compare --dataset PATH`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i, p in enumerate(problems):
            row = {"id": f"wp-{i}", "problem": p.question, "answer": p.answer, "instruction": INSTRUCTION}
            fh.write(json.dumps(row) + "\n")
    return path
