"""The grader on real data (MATH-500's reference solutions), multiple choice, pass@k, and the loaders."""

from __future__ import annotations

import json
import re

import pytest

from rlvr_core.errors import UsageError
from rlvr_core.math.grading import extract_boxed, extract_choice, grade, grade_choice, pass_at_k
from rlvr_core.pipelines.generation import build_prompt
from rlvr_core.readers.datasets import load_dataset

from .conftest import benchmarks_dir

DATA = benchmarks_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="../shared/data/benchmarks not found (set RLVR_DATA)")


@needs_data
def test_math500_reference_solutions_grade_correct_and_wrong_answers_do_not():
    rows = [json.loads(line) for line in (DATA / "math500.jsonl").read_text().splitlines() if line.strip()]
    misses = [r["unique_id"] for r in rows if not grade(r["solution"], r["answer"])]
    rate = 1 - len(misses) / len(rows)
    print(
        f"MATH-500: {len(rows) - len(misses)}/{len(rows)} reference solutions graded correct ({rate:.2%}); "
        f"misses: {misses}"
    )
    assert rate >= 0.99, misses
    integer_rows = [r for r in rows if re.fullmatch(r"-?\d+", r["answer"].strip())]
    assert len(integer_rows) > 200
    wrongly_accepted = [
        r["unique_id"]
        for r in integer_rows
        if grade(f"... so the answer is $\\boxed{{{int(r['answer']) + 1}}}$.", r["answer"])
    ]
    assert wrongly_accepted == []


def test_grade_handles_equivalent_forms_and_missing_boxes():
    assert grade("Thus $\\boxed{\\frac{1}{2}}$.", "0.5")
    assert grade("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)")
    assert not grade("\\boxed{3}", "4")
    assert extract_boxed("a \\boxed{x^{2}} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert extract_boxed("no box here") is None


def test_grade_works_outside_the_main_thread():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # math-verify's signal-based timeouts would raise here
        assert list(pool.map(grade, ["\\boxed{\\frac{1}{2}}", "\\boxed{3}"], ["0.5", "4"])) == [True, False]


def test_multiple_choice_letters():
    assert grade_choice("Reasoning... The answer is (B).", "B")
    assert grade_choice("so the final answer is \\boxed{C}", "C")
    assert grade_choice("**Answer:** D", "D")
    assert not grade_choice("The answer is (A).", "B")
    assert not grade_choice("The answer is B and C.", "B")  # two letters named: no answer
    assert not grade_choice("\\boxed{A, B}", "A")
    assert extract_choice("I am not sure.") is None


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


@needs_data
def test_every_shared_set_loads_by_name_with_its_fields_mapped():
    sizes = {"math500": 500, "gsm8k": 1319, "aime24": 30, "aime25": 30, "amc": 40, "minerva": 272, "gpqa_diamond": 198}
    for name, size in sizes.items():
        ds = load_dataset(name, DATA)
        assert len(ds.problems) == size and all(p.question and p.answer for p in ds.problems), name
        assert ds.kind == ("choice" if name == "gpqa_diamond" else "math")
    assert load_dataset("amc", DATA).problems[0].answer == "27"  # 27.0 in the file
    gpqa = load_dataset("gpqa_diamond", DATA, limit=3)
    assert len(gpqa.problems) == 3 and gpqa.problems[0].answer in "ABCD"
    prompt = build_prompt(object(), gpqa.problems[0], "choice")
    assert "\nA) " in prompt and "\nD) " in prompt and "\\boxed{}" in prompt
    with pytest.raises(UsageError, match="available: arithmetic, aime24"):
        load_dataset("math5000", DATA)


def test_builtin_arithmetic_set_and_missing_data_dir(monkeypatch):
    ds = load_dataset("arithmetic", limit=5)
    assert ds.kind == "exact" and len(ds.problems) == 5 and re.fullmatch(r"\d{3}\+\d{3}=", ds.problems[0].question)
    monkeypatch.delenv("RLVR_DATA", raising=False)
    with pytest.raises(UsageError, match="no --data-dir and no \\$RLVR_DATA"):
        load_dataset("math500")
