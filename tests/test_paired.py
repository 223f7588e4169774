"""Paired substitution: McNemar's exact test, the per-problem counts `rlvr compare` stores with each recovery
row (checked by hand against the stored outcomes of the demo), comparisons of other modules and alpha kept
apart, and the Substitution page's form, paired view and drill-down (AppTest over a real demo cache)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.stats import binomtest
from streamlit.testing.v1 import AppTest

from rlvr_core.cache import Cache
from rlvr_core.cache import queue as jobs
from rlvr_core.math.stats import mcnemar

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "rlvr_dashboard/views/substitution.py"


def test_mcnemar_counts_and_its_exact_p_equal_scipys_binomial_test() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        first, second = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
        result = mcnemar(first, second)
        gained, lost = int(((second == 1) & (first == 0)).sum()), int(((first == 1) & (second == 0)).sum())
        assert (result.gained, result.lost) == (gained, lost)
        assert result.both + result.neither + gained + lost == 40
        expected = binomtest(gained, gained + lost, 0.5).pvalue if gained + lost else 1.0
        assert result.p == pytest.approx(expected, rel=1e-12)
    # several samples per problem: solved = at least half of them right
    assert mcnemar(np.array([0.5, 0.25, 1.0]), np.array([0.25, 0.75, 1.0])) == mcnemar([1, 0, 1], [0, 1, 1])
    assert mcnemar([0] * 12, [1] * 12).p == pytest.approx(2 / 2**12)
    with pytest.raises(ValueError, match="different lengths"):
        mcnemar([1, 0], [1])


def _outcomes(cache: Path, eval_id: str) -> dict[str, float]:
    """problem -> share of samples right, read from the stored Parquet file itself (not through the tool)."""
    table = pq.read_table(cache / "evals" / eval_id / "eval_samples.parquet").to_pylist()
    by_problem: dict[str, list[bool]] = {}
    for row in table:
        by_problem.setdefault(row["problem_id"], []).append(row["correct"])
    return {p: sum(c) / len(c) for p, c in by_problem.items()}


@pytest.mark.slow
def test_the_demos_paired_counts_and_mcnemar_p_equal_a_count_by_hand(quick_demo) -> None:
    cache = quick_demo[1]
    rows = Cache(cache).queries().recovery()
    assert len(rows) >= 2
    for row in rows.itertuples():
        rank = _outcomes(cache, row.eval_id_rank)
        for against in ("full", "base"):
            other = _outcomes(cache, getattr(row, f"eval_id_{against}"))
            gained = sum(rank[p] >= 0.5 > other[p] for p in other)
            lost = sum(other[p] >= 0.5 > rank[p] for p in other)
            p = binomtest(gained, gained + lost, 0.5).pvalue if gained + lost else 1.0
            assert (getattr(row, f"gained_vs_{against}"), getattr(row, f"lost_vs_{against}")) == (gained, lost)
            assert getattr(row, f"mcnemar_{against}_p") == pytest.approx(p, rel=1e-9)
            listed = Cache(cache).queries().paired_problems(getattr(row, f"eval_id_{against}"), row.eval_id_rank)
            assert (listed["outcome"] == "gained").sum() == gained and (listed["outcome"] == "lost").sum() == lost
    assert (rows["gained_vs_base"] + rows["lost_vs_base"]).sum() > 0  # the demo's models do disagree


def test_comparisons_of_other_modules_or_alpha_keep_their_own_rows_and_folders(tmp_path) -> None:
    from rlvr_core.pipelines.compare import RECOVERY_KEY

    cache = Cache(tmp_path / "cache")
    base = {"run": "r", "step": 10, "rank": 1, "mode": "truncated", "dataset": "d", "keep": "base", "alpha": 1.0}
    old = {k: v for k, v in base.items() if k not in ("alpha",)}  # a row stored before alpha and modules were
    cache.merge_run_rows("r", "recovery", [old], ("step", "rank", "mode", "dataset", "keep"))
    rows = [{**base, "modules": None}, {**base, "modules": "mlp"}, {**base, "alpha": 0.5, "modules": None}]
    cache.merge_run_rows("r", "recovery", rows, RECOVERY_KEY)
    cache.merge_run_rows("r", "recovery", [{**base, "modules": "mlp", "acc_rank": 0.5}], RECOVERY_KEY)
    stored = cache.queries().recovery()
    assert sorted(zip(stored["modules"], stored["alpha"].fillna(-1))) == [
        ("all", -1.0), ("all", 0.5), ("all", 1.0), ("mlp", 1.0)
    ]  # fmt: skip
    assert stored.loc[stored["modules"] == "mlp", "acc_rank"].tolist() == [0.5]  # replaced, not added
    folders = {cache.variant_dir("r", 10, 1, "truncated", 1.0, "base", m) for m in (None, "mlp", "attn")}
    assert len(folders) == 3


@pytest.fixture
def demo_copy(quick_demo, tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(quick_demo[1], cache)
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    return cache


@pytest.mark.slow
def test_the_form_sends_modules_keep_and_alpha_and_the_paired_view_shows_the_stored_counts(demo_copy) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception
    newest = Cache(demo_copy).queries().latest_comparisons().iloc[0]
    shown = {m.label: m.value for m in at.metric}
    assert shown["gained (rank-k only, not full)"] == str(newest["gained_vs_full"])
    assert shown["lost (full only)"] == str(newest["lost_vs_full"])
    assert shown["McNemar exact p"] == f"{newest['mcnemar_full_p']:.3g}"
    assert any("Chance" in c.value for c in at.caption)
    assert at.selectbox(key="url_eval").value == newest["eval_id_rank"]  # the drill-down opens on it
    at.radio(key="url_against").set_value("base").run()
    shown = {m.label: m.value for m in at.metric}
    assert shown["gained (rank-k only, not base)"] == str(newest["gained_vs_base"])
    at.text_input(key="dataset").set_value("arithmetic")
    at.number_input(key="limit").set_value(5)
    at.number_input(key="alpha").set_value(0.5)
    at.selectbox(key="keep").set_value("step")
    at.text_input(key="modules").set_value("mlp")
    at.button[0].click().run()
    (job,) = jobs.list_jobs(demo_copy)
    argv = job.argv
    assert argv[argv.index("--alpha") + 1] == "0.5" and argv[argv.index("--keep") + 1] == "step"
    assert argv[argv.index("--modules") + 1] == "mlp"


@pytest.mark.slow
def test_a_comparison_from_the_form_runs_and_the_page_follows_it(demo_copy) -> None:
    cache = demo_copy
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE).run()
    demo_rows = at.dataframe[0].value  # the demo's own rank-1 evaluations are there from the start
    assert not at.exception and set(demo_rows["keep"]) == {"step"} and sorted(demo_rows["step"]) == [10, 20]
    at.text_input(key="dataset").set_value("arithmetic")
    at.number_input(key="limit").set_value(50)
    at.number_input(key="max_new_tokens").set_value(5)
    at.button[0].click().run()
    (job,) = jobs.list_jobs(cache)
    assert job.kind == "compare" and "--limit" in job.argv and job.argv[job.argv.index("--run") + 1] == "demo-grpo"
    worker = subprocess.run(
        [sys.executable, "-m", "rlvr_core", "worker", "--once", "--cache", str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0 and jobs.get(cache, job.id).state == "done", jobs.log_tail(cache, job.id)
    at.run()  # the same session, right after the comparison
    assert not at.exception
    table = at.dataframe[0].value
    table = table[table["keep"] == "base"]
    assert sorted(table["step"]) == [10, 20] and set(table["n_problems"]) == {50}
    newest = Cache(cache).queries().latest_comparisons().iloc[0]
    assert newest["keep"] == "base" and at.selectbox(key="url_eval").value == newest["eval_id_rank"]
    legend = [str(t.get("name")) for t in _traces(at)]  # the recovery chart's series say keep and n
    assert any("rest from the base" in name and "n = 50 x 1" in name and "<br>" in name for name in legend), legend
    assert len(at.dataframe[-1].value) == 50  # the drill-down: one row per problem
    at.checkbox(key="url_wrong").check().run()
    assert (~at.dataframe[-1].value["correct"]).all()


def _traces(at) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
