"""The dashboard's pages render from a real cache (Streamlit's AppTest runs the scripts headless)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rlvr_core.cli import main
from rlvr_core.fixtures import ModelShape, build_run

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def cache_with_run(tmp_path, monkeypatch):
    fx = build_run(tmp_path / "d", ModelShape(n_layers=2), steps=(10, 20))
    cache = tmp_path / "cache"
    assert main(["analyze", str(fx.run_dir), "--base", str(fx.base_dir), "--cache", str(cache), "--run",
                 "grpo-demo", "--quiet"]) == 0
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    return cache


def test_runs_page_lists_the_cached_run(cache_with_run) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    frame = at.dataframe[0].value
    assert sorted(frame["step"].tolist()) == [0, 10, 20] and set(frame["run"]) == {"grpo-demo"}


def test_layers_page_draws_the_heatmap(cache_with_run) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/layers.py").run()
    assert not at.exception
    assert at.selectbox[0].value == "grpo-demo" and at.selectbox[1].value == 20
    table = at.dataframe[0].value
    assert len(table) == 14 and table["rank1_energy"].min() > 0.99


def test_empty_cache_says_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "empty"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and "rlvr analyze RUN_DIR --base BASE_DIR" in at.info[0].value


def test_dashboard_never_imports_torch() -> None:
    code = ("import sys, runpy; sys.argv=['x']; import rlvr_core.store, rlvr_core.layout, rlvr_core.checkpoint, rlvr_core.jobs; "
            "import streamlit, plotly; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_jobs_page_queues_the_demo_and_cancels_it(tmp_path, monkeypatch) -> None:
    from rlvr_core import jobs

    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/jobs.py").run()
    assert not at.exception and at.title[0].value == "Jobs"
    assert "No jobs yet" in at.info[0].value
    at.button[0].click().run()
    queued = jobs.list_jobs(cache)
    assert [(j.kind, j.state, j.argv) for j in queued] == [("demo", "queued", ["--if-missing"])]
    assert at.dataframe[0].value["state"].tolist() == ["queued"]
    next(b for b in at.button if b.label == "Cancel this job").click().run()
    assert jobs.get(cache, queued[0].id).state == "cancelled"


@pytest.fixture
def demo_cache(quick_demo, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(quick_demo[1]))
    return quick_demo[1]


@pytest.mark.slow
def test_reward_page_on_the_demo(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reward.py").run()
    assert not at.exception
    assert set(at.multiselect[0].value) == {"demo-grpo", "demo-grpo-rank1-k10"}
    assert len(at.get("plotly_chart")) == 1
    assert set(at.dataframe[0].value["run"]) == {"demo-grpo", "demo-grpo-rank1-k10"}
    at.multiselect[0].set_value(["demo-grpo"]).run()
    assert set(at.dataframe[0].value["run"]) == {"demo-grpo"}


@pytest.mark.slow
def test_alignment_page_on_the_demo(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/alignment.py").run()
    assert not at.exception
    assert at.selectbox[0].options == ["demo-grpo", "demo-grpo-rank1-k10"]
    assert len(at.get("plotly_chart")) == 2
    at.selectbox[1].set_value("cos_u_prev").run()
    assert not at.exception


def test_new_pages_say_what_to_do_on_an_empty_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "empty"))
    for page, hint in (("pages/reward.py", "rlvr logs"), ("pages/alignment.py", "rlvr analyze")):
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page(page).run()
        assert not at.exception and hint in at.info[0].value


@pytest.mark.slow
def test_spectra_page_on_the_demo(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/spectra.py").run()
    assert not at.exception
    assert at.selectbox[0].value == "demo-grpo" and at.selectbox[1].value == 20
    assert len(at.get("plotly_chart")) == 3
    first = at.dataframe[0].value
    assert len(first) == 21 and set(first["fit_status"]) <= {"ok", "failed"}
    at.radio[0].set_value("dW").run()
    assert not at.exception and len(at.dataframe[0].value) == 21
    at.selectbox[2].set_value(first["tensor"].iloc[5]).run()
    assert not at.exception


@pytest.mark.slow
def test_substitution_page_queues_a_comparison_and_shows_recovery(quick_demo, tmp_path, monkeypatch) -> None:
    import shutil

    from rlvr_core import jobs

    cache = tmp_path / "cache"
    shutil.copytree(quick_demo[1], cache)
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/substitution.py").run()
    assert not at.exception and "No comparisons yet" in at.info[0].value
    at.text_input(key="dataset").set_value("arithmetic")
    at.number_input(key="limit").set_value(50)
    at.number_input(key="max_new_tokens").set_value(5)
    at.button[0].click().run()
    (job,) = jobs.list_jobs(cache)
    assert job.kind == "compare" and "--limit" in job.argv and job.argv[job.argv.index("--run") + 1] == "demo-grpo"
    worker = subprocess.run([sys.executable, "-m", "rlvr_core", "worker", "--once", "--cache", str(cache)],
                            capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0 and jobs.get(cache, job.id).state == "done", jobs.log_tail(cache, job.id)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/substitution.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table["step"]) == [10, 20] and set(table["n_problems"]) == {50}
    assert len(at.dataframe[1].value) == 50  # the drill-down: one row per problem
    at.checkbox[0].check().run()
    assert (~at.dataframe[1].value["correct"]).all()


@pytest.mark.slow
def test_selections_live_in_the_url(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/layers.py")
    at.query_params["run"] = "demo-grpo-rank1-k10"
    at.query_params["step"] = "10"
    at.run()
    assert not at.exception
    assert at.selectbox[0].value == "demo-grpo-rank1-k10" and at.selectbox[1].value == 10
    at.selectbox[1].set_value(20).run()
    assert at.query_params["step"] in ("20", ["20"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/layers.py")
    at.query_params["run"] = "no-such-run"
    at.run()
    assert not at.exception and at.selectbox[0].value == "demo-grpo"  # an unknown value falls back
