"""The dashboard's pages render from a real cache (Streamlit's AppTest runs the scripts headless)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rlvr_core.cli import main
from rlvr_core.fixtures import ModelShape, build_run

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def cache_with_run(tmp_path, monkeypatch):
    fx = build_run(tmp_path / "d", ModelShape(n_layers=2), steps=(10, 20))
    cache = tmp_path / "cache"
    assert (
        main(
            [
                "analyze",
                str(fx.run_dir),
                "--base",
                str(fx.base_dir),
                "--cache",
                str(cache),
                "--run",
                "grpo-demo",
                "--quiet",
            ]
        )
        == 0
    )
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    return cache


def test_runs_page_lists_the_cached_run(cache_with_run) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    runs = at.dataframe[0].value
    assert runs["run"].tolist() == ["grpo-demo"] and list(runs["step_list"][0]) == [0, 10, 20]
    assert runs["steps"].tolist() == [2] and runs["tensors_analysed"].tolist() == [42]
    frame = at.dataframe[1].value  # every checkpoint
    assert sorted(frame["step"].tolist()) == [0, 10, 20] and set(frame["run"]) == {"grpo-demo"}


def test_layers_page_draws_the_heatmap(cache_with_run) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/layers.py").run()
    assert not at.exception
    assert at.selectbox[0].value == "grpo-demo" and at.selectbox[1].value == 20
    table = at.dataframe[0].value
    assert len(table) == 14 and table["rank1_energy"].min() > 0.99
    assert len(at.get("download_button")) == 1


def test_empty_cache_says_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "empty"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and "rlvr analyze RUN_DIR --base BASE_DIR" in at.info[0].value
    (guide,) = at.expander  # the start guide, open on an empty cache: every page, linked, with its question
    assert guide.label.startswith("Start here") and guide.proto.expanded
    links = [e for e in guide if getattr(e, "type", None) == "page_link"]
    views = (Path(APP).parent / "rlvr_dashboard" / "views").glob("*.py")
    assert len(links) == len(list(views)) and all(link.proto.page_script_hash for link in links)  # real pages
    assert links[0].proto.label == "Runs" and all(len(e.value) > 30 for e in guide.markdown)  # each a question


def test_runs_page_queues_the_demo_and_jobs_page_cancels_it(tmp_path, monkeypatch) -> None:
    from rlvr_core.cache import queue as jobs

    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and "No runs in the cache" in at.info[0].value
    next(b for b in at.button if b.label == "Queue the demo").click().run()
    queued = jobs.list_jobs(cache)
    assert [(j.kind, j.state, j.argv) for j in queued] == [("demo", "queued", ["--if-missing"])]
    assert any("demo job" in s.value for s in at.success)
    at = AppTest.from_file(APP, default_timeout=60).run()  # the progress display: queued, waiting for a worker
    assert any("waits for a worker" in i.value for i in at.info)
    at.switch_page("rlvr_dashboard/views/jobs.py").run()
    assert not at.exception and at.title[0].value == "Jobs"
    assert at.dataframe[0].value["state"].tolist() == ["queued"]
    assert {"started", "finished", "took"} <= set(at.dataframe[0].value.columns)
    assert at.selectbox(key="url_job").options == [f"{queued[0].id} (demo)"]  # the state is not frozen in a label
    next(b for b in at.button if b.label == "Cancel this job").click().run()
    assert jobs.get(cache, queued[0].id).state == "cancelled"


def test_runs_page_checks_a_run_folder_and_queues_its_analysis(tmp_path, monkeypatch) -> None:
    from rlvr_core.cache import queue as jobs

    fx = build_run(tmp_path / "d", ModelShape(n_layers=2), steps=(10, 20), layout="verl")
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="run_dir").set_value(str(tmp_path / "nowhere"))
    next(b for b in at.button if b.label == "Check").click().run()
    assert "no such folder" in at.error[0].value and not jobs.list_jobs(cache)
    at.text_input(key="run_dir").set_value(str(fx.run_dir))
    next(b for b in at.button if b.label == "Check").click().run()
    assert at.success[0].value == "verl layout: 2 checkpoints, steps 10, 20"
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    assert "base model folder" in at.error[0].value and not jobs.list_jobs(cache)
    at.text_input(key="base_dir").set_value(str(fx.base_dir))
    at.text_input(key="run_name").set_value("mine")
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    (job,) = jobs.list_jobs(cache)
    assert job.kind == "analyze" and job.argv == [
        str(fx.run_dir),
        "--base",
        str(fx.base_dir),
        "--run",
        "mine",
        "--quiet",
    ]
    at.text_input(key="log_path").set_value(str(tmp_path / "log.jsonl"))
    at.text_input(key="log_run").set_value("mine")
    next(b for b in at.button if b.label == "Queue the ingestion").click().run()
    assert "no such file or folder" in at.error[0].value  # a missing log is refused on the page
    (tmp_path / "log.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
    next(b for b in at.button if b.label == "Queue the ingestion").click().run()
    assert [j.kind for j in jobs.list_jobs(cache)].count("logs") == 1


@pytest.fixture
def demo_cache(quick_demo, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(quick_demo[1]))
    return quick_demo[1]


@pytest.mark.slow
def test_reward_page_on_the_demo(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/reward.py").run()
    assert not at.exception
    assert set(at.multiselect[0].value) == {"demo-grpo", "demo-grpo-rank1-k10"}
    assert len(at.get("plotly_chart")) == 2  # reward vs test, and the other logged metrics
    assert set(at.dataframe[0].value["run"]) == {"demo-grpo", "demo-grpo-rank1-k10"}
    at.multiselect[0].set_value(["demo-grpo"]).run()
    assert set(at.dataframe[0].value["run"]) == {"demo-grpo"}


@pytest.mark.slow
def test_alignment_page_on_the_demo(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/alignment.py").run()
    assert not at.exception
    assert at.selectbox[0].options == ["demo-grpo", "demo-grpo-rank1-k10"]
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    names = {t["name"] for t in json.loads(charts[0].proto.spec)["data"] if t.get("showlegend", True) is not False}
    assert {"self_attn.q_proj", "mlp.down_proj"} <= names  # per module kind, with bands
    (chance,) = [t for t in json.loads(charts[1].proto.spec)["data"] if t["name"].startswith("chance")]
    assert chance["y"][0] == chance["y"][1] and 0 < chance["y"][0] < 0.5  # E|cos| of random unit vectors
    at.selectbox(key="url_measure").set_value("cos_u_prev").run()
    assert not at.exception
    at.selectbox(key="url_group").set_value("self_attn.q_proj").run()  # per layer of one module kind
    assert not at.exception
    traces = json.loads(at.get("plotly_chart")[1].proto.spec)["data"]
    assert sorted(t["name"] for t in traces if not t["name"].startswith("chance")) == ["0", "1", "2"]  # 3 layers
    assert any(t["name"].startswith("chance: random directions") for t in traces)
    assert at.query_params["group"] in ("self_attn.q_proj", ["self_attn.q_proj"])


def test_new_pages_say_what_to_do_on_an_empty_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "empty"))
    for page, hint in (
        ("rlvr_dashboard/views/reward.py", "rlvr logs"),
        ("rlvr_dashboard/views/alignment.py", "rlvr analyze"),
        ("rlvr_dashboard/views/prediction.py", "two or more analysed steps"),
        ("rlvr_dashboard/views/metrics.py", "rlvr correlate"),
    ):
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page(page).run()
        assert not at.exception and hint in at.info[0].value


@pytest.mark.slow
def test_spectra_page_on_the_demo(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/spectra.py").run()
    assert not at.exception
    assert at.selectbox[0].value == "demo-grpo" and at.selectbox[1].value == 20
    assert len(at.get("plotly_chart")) == 3
    esd = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert "eigenvalues at step 0 (base)" in esd and "eigenvalues at step 20" in esd  # base against step
    first = at.dataframe[0].value
    assert len(first) == 21 and set(first["fit_status"]) <= {"ok", "failed"}
    at.radio[0].set_value("dW").run()
    assert not at.exception and len(at.dataframe[0].value) == 21
    esd = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert "eigenvalues at step 0 (base)" not in esd  # the base has no dW
    at.multiselect(key="url_vs").set_value([10]).run()
    esd = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert "eigenvalues at step 10" in esd and "eigenvalues at step 20" in esd
    at.selectbox[2].set_value(first["tensor"].iloc[5]).run()
    assert not at.exception
    at.selectbox(key="url_group").set_value("mlp.down_proj").run()
    assert not at.exception
    curves = [t["name"] for t in json.loads(at.get("plotly_chart")[2].proto.spec)["data"]]
    assert [c for c in curves if not c.startswith("chance")] == ["0", "1", "2"]  # one curve per layer
    assert len([c for c in curves if c.startswith("chance: a Gaussian matrix")]) == 1  # and what chance fits


@pytest.mark.slow
def test_spectra_page_says_why_alpha_points_are_missing(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"run": "demo-grpo-rank1-k10", "target": "dW"})
    at.switch_page("rlvr_dashboard/views/spectra.py").run()
    assert not at.exception
    (note,) = [w.value for w in at.warning if w.value.startswith("Missing α points")]
    assert "step 10\\: 21 of 21 fits failed" in note and "rank\\-1 substitution step is by design" in note
    alpha = json.loads(at.get("plotly_chart")[-1].proto.spec)["layout"]  # alpha over steps: marked, not blank
    assert sorted(s["x0"] for s in alpha["shapes"] if s.get("line", {}).get("dash") == "dot") == [10, 20]
    assert [a["text"] for a in alpha["annotations"]].count("no α") == 2


@pytest.mark.slow
def test_selections_live_in_the_url(demo_cache) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/layers.py")
    at.query_params["run"] = "demo-grpo-rank1-k10"
    at.query_params["step"] = "10"
    at.run()
    assert not at.exception
    assert at.selectbox[0].value == "demo-grpo-rank1-k10" and at.selectbox[1].value == 10
    at.selectbox[1].set_value(20).run()
    assert at.query_params["step"] in ("20", ["20"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/layers.py")
    at.query_params["run"] = "no-such-run"
    at.run()
    assert not at.exception and at.selectbox[0].value == "demo-grpo"  # an unknown value falls back, said
    said = [w.value.replace("\\", "") for w in at.warning]
    assert any("no-such-run" in w and "showing 'demo-grpo'" in w for w in said), said


def test_read_only_dashboard_shows_no_way_to_start_jobs(tmp_path, monkeypatch) -> None:
    from rlvr_core.cache import queue as jobs

    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    monkeypatch.setenv("RLVR_READ_ONLY", "1")
    queued, _ = jobs.submit(cache, "demo", ["--if-missing"])
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and "Read-only dashboard" in at.caption[-1].value
    assert not [b for b in at.button if b.label in ("Queue the demo", "Check", "Queue the analysis")]
    assert len(at.text_input) == 0
    at.switch_page("rlvr_dashboard/views/substitution.py").run()
    assert not at.exception and len(at.button) == 0 and len(at.text_input) == 0
    at.switch_page("rlvr_dashboard/views/jobs.py").run()
    assert not at.exception and not [b for b in at.button if b.label == "Cancel this job"]
    assert jobs.get(cache, queued).state == "queued"


@pytest.mark.parametrize("mode, shown", [("header", "Not signed in"), ("oidc", "log in to see its runs")])
def test_with_auth_an_anonymous_visitor_sees_only_the_login(cache_with_run, tmp_path, monkeypatch, mode, shown) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\ncookie_secret = "x"\n')
    monkeypatch.setenv("RLVR_AUTH", mode)
    monkeypatch.setenv("RLVR_AUTH_SECRETS", str(secrets))
    # (AppTest's switch_page runs a page without app.py; the browser test opens other pages behind the gate)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["RLVR Lens"]
    assert any(shown in e.value for e in list(at.error) + list(at.info))
    assert len(at.dataframe) == 0 and len(at.selectbox) == 0 and len(at.text_input) == 0
    assert [b.label for b in at.button] == (["Log in"] if mode == "oidc" else [])


def test_runs_page_reads_only_under_the_data_roots(tmp_path, monkeypatch) -> None:
    from rlvr_core.cache import queue as jobs

    fx = build_run(tmp_path / "models" / "r", ModelShape(n_layers=2), steps=(10, 20), layout="trl")
    outside = build_run(tmp_path / "elsewhere", ModelShape(n_layers=2), steps=(10,), layout="trl")
    (tmp_path / "models" / "link").symlink_to(outside.run_dir)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    monkeypatch.setenv("RLVR_DATA_ROOTS", str(tmp_path / "models"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert at.selectbox(key="found_run").options == [str(fx.run_dir.resolve())]
    for bad in (
        str(outside.run_dir),
        str(tmp_path / "models" / ".." / "elsewhere" / fx.run_dir.name),
        str(tmp_path / "models" / "link"),
    ):
        at.text_input(key="run_dir").set_value(bad)
        next(b for b in at.button if b.label == "Check").click().run()
        assert "outside" in at.error[0].value and "data roots" in at.error[0].value, bad
    at.selectbox(key="found_run").set_value(str(fx.run_dir.resolve())).run()
    assert at.text_input(key="run_dir").value == str(fx.run_dir.resolve())
    at.text_input(key="base_dir").set_value(str(outside.base_dir))
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    assert "Base model folder" in at.error[0].value and not jobs.list_jobs(cache)
    at.text_input(key="base_dir").set_value(str(fx.base_dir))
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    assert [j.kind for j in jobs.list_jobs(cache)] == ["analyze"]


def test_runs_page_shows_the_demo_build_in_progress(tmp_path, monkeypatch) -> None:
    from rlvr_core.cache import progress
    from rlvr_core.cache import queue as jobs

    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    ident, _ = jobs.submit(cache, "demo", ["--if-missing"])
    job = jobs.claim(cache, "w")
    log = jobs.log_path(cache, ident)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("[  12.0 s] warm-up step 100: loss 1.234, validation accuracy 0.031\n")
    monkeypatch.setenv(jobs.JOB_ENV, job.id)
    monkeypatch.setenv(jobs.DB_ENV, str(jobs.db_path(cache)))
    progress.report(None, "warm-up step 100: loss 1.234")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    (status,) = at.status
    shown = re.sub(r"\\(.)", r"\1", status.label)  # the label is Markdown with the job's text escaped
    assert shown == f"Building the demo (job {ident}): warm-up step 100: loss 1.234"
    assert status.icon == "spinner" and "validation accuracy 0.031" in at.code[0].value
    assert not [b for b in at.button if b.label == "Queue the demo"]  # already building


def test_reward_page_says_why_a_run_has_no_test_curve(tmp_path, monkeypatch):
    import json as _json

    log = tmp_path / "trainer_state.json"
    history = [{"step": s, "reward": 0.1 * s, "eval_loss": 1.0 / s, "clip_ratio/low_mean": 0.0} for s in range(1, 6)]
    log.write_text(_json.dumps({"log_history": history}))
    cache = tmp_path / "cache"
    assert main(["logs", str(log), "--run", "noeval", "--cache", str(cache)]) == 0
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/reward.py").run()
    assert not at.exception
    (warning,) = [re.sub(r"\\(.)", r"\1", w.value) for w in at.warning]  # shown with Markdown escaped
    assert warning.startswith("noeval: no test metric") and "held-out names it holds: eval_loss" in warning


@pytest.mark.slow
def test_prediction_page_queues_a_prediction_and_its_evaluation_and_metrics_page_ranks(tmp_path, monkeypatch) -> None:
    from rlvr_core.cache import queue as jobs

    steps = (10, 20, 30)
    fx = build_run(tmp_path / "d", ModelShape(n_layers=2), steps=steps, dtype="fp32")
    cache = tmp_path / "cache"
    assert main(["analyze", str(fx.run_dir), "--base", str(fx.base_dir), "--cache", str(cache), "--quiet"]) == 0
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "data": {"reward": s / 100, "eval_accuracy": s / 50}}) + "\n"
                           for s in steps))  # fmt: skip
    assert main(["logs", str(log), "--run", "run", "--cache", str(cache)]) == 0
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/prediction.py").run()
    assert not at.exception and "not been predicted from step 10" in at.info[0].value
    next(b for b in at.button if b.label == "Predict it").click().run()
    (job,) = jobs.list_jobs(cache)
    assert job.kind == "predict" and job.argv[:5] == ["run", "--from-step", "10", "--to-step", "30"]
    worker = [sys.executable, "-m", "rlvr_core", "worker", "--drain", "--cache", str(cache)]
    assert subprocess.run(worker, capture_output=True, timeout=300).returncode == 0
    assert jobs.get(cache, job.id).state == "done", jobs.log_tail(cache, job.id)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/prediction.py").run()
    assert not at.exception and len(at.get("plotly_chart")) == 2 and not at.info
    table = at.dataframe[0].value
    assert set(table.from_step) == {10} and (table.cos_u1 > 0.99).all()
    next(b for b in at.button if b.label == "Evaluate this prediction").click().run()
    compare = next(j for j in jobs.list_jobs(cache) if j.kind == "compare")
    assert compare.argv[compare.argv.index("--predicted") + 1].endswith("predicted-from-10-to-30-rank1")
    assert at.code[0].value == compare.argv[compare.argv.index("--predicted") + 1]  # the path as it is, no escapes
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/metrics.py").run()
    assert not at.exception and len(at.get("plotly_chart")) == 1
    ranked = at.dataframe[0].value
    assert len(ranked) > 0 and set(ranked[ranked.metric != "cos_u1_final"].n_changes) == {2}  # 3 steps: 2 changes
    assert set(ranked[ranked.metric == "cos_u1_final"].n_changes) == {1}  # its last step is left out
    assert "p_adjusted" in ranked.columns and any("step-to-step changes" in c.value for c in at.caption)
    sigma = ranked[ranked.metric == "sigma1"]
    assert np.allclose(sigma.spearman, 1)  # sigma1 grows with the step, as the accuracy does (levels)
