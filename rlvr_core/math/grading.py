"""Grading completions against gold answers: math (boxed answer, verified with `math-verify`), multiple
choice (the chosen letter), and exact match (the demo's arithmetic task).

- `grade(completion, gold)`: the last `\\boxed{...}` (or `\\fbox{...}`) of the completion is extracted with
  balanced braces and compared with the gold answer by math-verify (symbolic and numeric equivalence,
  sets, intervals, matrices, LaTeX normalisation). A completion without a boxed answer falls back to
  math-verify's own extraction from the whole text (e.g. "the answer is 5").
- `grade_choice(completion, gold_letter)`: the chosen letter, from a boxed letter, "answer is (C)",
  "Answer: C" or a short last line; a final answer that names two different letters is wrong.
- `grade_exact(completion, gold)`: stripped text equality (the demo's verifier, `arithmetic.verify`).
- `pass_at_k(n, c, k)`: the unbiased estimator of Chen et al. 2021 (Codex), 1 - C(n-c, k) / C(n, k).
Plain Python on strings: no torch, no files.
"""

from __future__ import annotations

import logging
import math
import re
import threading

__all__ = ["extract_boxed", "extract_choice", "grade", "grade_choice", "grade_exact", "pass_at_k"]


class _NoTimeoutNotice(logging.Filter):
    """Drops math-verify's notice that timeouts are off (we turn them off on purpose outside the main thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_NoTimeoutNotice())


def grade_exact(completion: str, gold: str) -> bool:
    """The completion, stripped of surrounding whitespace, equals the gold answer exactly."""
    return completion.strip() == gold


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` / `\\fbox{...}` (braces balanced), or None."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        bare = re.findall(r"\\boxed ([^\s$]+)", text)  # "\boxed 5"
        return bare[-1] if bare else None
    start, depth = starts[-1], 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return None


def grade(completion: str, gold: str) -> bool:
    """True when the completion's final (boxed) answer is mathematically equal to `gold`."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    # math-verify's timeouts use signal.alarm, which only the main thread may set: elsewhere (a worker's
    # thread, the dashboard) run without them.
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    gold_text = str(gold).strip()
    gold_parsed = parse(f"${gold_text}$", configs, parsing_timeout=limit) or parse(
        gold_text, configs, parsing_timeout=limit
    )
    if not gold_parsed:
        return _same_text(extract_boxed(completion) or completion, gold_text)
    boxed = extract_boxed(completion)
    text = f"$\\boxed{{{boxed}}}$" if boxed is not None else completion
    predicted = parse(text, configs, parsing_timeout=limit)
    if not predicted:
        return False
    return bool(verify(gold_parsed, predicted, timeout_seconds=limit)) or (
        boxed is not None and _same_text(boxed, gold_text)
    )


def _same_text(a: str, b: str) -> bool:
    """Equality after removing spaces, `\\text{}`, `\\left`/`\\right`, `$` and a trailing period."""

    def norm(s: str) -> str:
        s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
        s = re.sub(r"\\(left|right|!|,|;|:)", "", s)
        return re.sub(r"[\s$]", "", s).rstrip(".").lower()

    return norm(a) == norm(b)


_ANSWER_AT = re.compile(r"answer(?:\s+is)?\s*[:：]?", re.IGNORECASE)
_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-J])\)?(?![A-Za-z])")


def extract_choice(completion: str) -> str | None:
    """The letter the completion chose, or None. The final answer is the last boxed content, else the
    text after the last "answer is" / "Answer:", else a short last line ("(C)", "C."); it must name
    exactly one letter: naming two ("B and C") is no answer."""
    text = completion.strip()
    span = extract_boxed(text)
    if span is None:
        anchors = list(_ANSWER_AT.finditer(text))
        if anchors:
            after = text[anchors[-1].end() :].strip()
            span = after.splitlines()[0] if after else ""
        else:
            last = text.splitlines()[-1].strip() if text else ""
            span = last if len(last) <= 12 else ""
    letters = {m.upper() for m in _LETTER.findall(span.replace("*", ""))}
    return letters.pop() if len(letters) == 1 else None


def grade_choice(completion: str, gold_letter: str) -> bool:
    """True when the completion chose exactly the gold letter."""
    return extract_choice(completion) == str(gold_letter).strip().upper()


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"k = {k} > n = {n} samples")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
