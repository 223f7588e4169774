"""Registered watches: a watch registered from the Runs page (AppTest), followed by `rlvr serve`'s watcher
and worker while another process writes the run slowly, through a restart of `rlvr serve` in the middle
of the run; `rlvr submit watch`, `rlvr watches`, `rlvr unwatch`; the Jobs page's watched runs and its
Stop button; the monitor's line in the server log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rlvr_core.cache import Cache, watches
from rlvr_core.cache import queue as jobs
from rlvr_core.fixtures import ModelShape, build_run, slow_writer
from tests.browser import free_port
from tests.conftest import wait_until
from tests.test_monitor import _write_log
from tests.test_serve import _healthy

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _register_from_the_runs_page(cache: Path, run_dir: Path, base: Path, log: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="run_dir").input(str(run_dir))
    at.text_input(key="base_dir").input(str(base))
    at.text_input(key="run_name").input("live")
    at.checkbox(key="keep_watching").check()
    at.text_input(key="watch_log").input(str(log))
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Watching run live" in s.value for s in at.success), [s.value for s in at.success]


def test_the_runs_page_registers_a_watch_and_the_jobs_page_stops_it(tmp_path, monkeypatch, cli) -> None:
    from streamlit.testing.v1 import AppTest

    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    run_dir.mkdir()  # a run that has written no checkpoint yet can be watched
    (tmp_path / "base").mkdir()
    _register_from_the_runs_page(cache, run_dir, tmp_path / "base", run_dir / "log.jsonl", monkeypatch)
    (watch,) = watches.list_watches(cache)
    assert (watch.run, watch.state, watch.spec.run_dir, watch.spec.log) == (
        "live",
        "watching",
        str(run_dir),
        str(run_dir / "log.jsonl"),
    )
    assert watch.spec.interval == 30 and watch.spec.options == {"device": "auto", "modules": None, "fits": True}
    code, out, _ = cli("submit", "watch", str(tmp_path / "other"), "--base", "/b", "--run", "live", "--cache", cache)
    assert code == 2  # one watch per run name: the error says how to stop the first
    code, out, err = cli("jobs", "--cache", cache)
    assert code == 0 and "watched runs (1;" in out and "live\twatching\tlast seen none" in out
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/jobs.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["live"] and table["state"].tolist() == ["watching"]
    next(b for b in at.button if b.label == "Stop watching").click().run()
    assert watches.list_watches(cache)[0].state == "stopped"
    assert cli("unwatch", "nobody", "--cache", cache)[0] == 2
    code, out, _ = cli(
        "submit",
        "watch",
        str(run_dir),
        "--base",
        str(tmp_path / "base"),
        "--run",
        "live",
        "--interval",
        "5",
        "--cache",
        cache,
    )
    assert code == 0 and out.strip() == "live"  # a stopped watch can be registered again
    assert json.loads(cli("watches", "--json", "--cache", cache)[1])[0]["spec"]["interval"] == 5
    assert cli("submit", "watch", str(run_dir), "--base", "/b", "--polls", "2", "--cache", cache)[0] == 2


def test_the_watcher_queues_one_analysis_of_a_run_at_a_time_in_step_order(tmp_path) -> None:
    from rlvr_core.service.watcher import look, run_watcher

    fx = build_run(tmp_path / "fx", ModelShape(n_layers=1), steps=(10, 20))
    cache, said = tmp_path / "cache", []
    spec = watches.WatchSpec(run="w", run_dir=str(fx.run_dir), base=str(fx.base_dir), interval=60, settle=0)
    watches.register(cache, spec, "ann")

    def once() -> watches.Watch:
        look(cache, watches.list_watches(cache)[0], said.append)
        return watches.list_watches(cache)[0]

    watch = once()
    (first,) = jobs.list_jobs(cache)
    assert first.argv[:2] == ["--checkpoint", f"10={fx.run_dir / 'checkpoint-10'}"] and first.submitted_by == "ann"
    assert watch.last_seen_step == 20 and "queued once the running analysis ends" not in watch.message
    watch = once()  # step 10's job has not run: step 20 waits for it
    assert len(jobs.list_jobs(cache)) == 1 and "step 20 complete: queued once" in watch.message
    claimed = jobs.claim(cache, "test-worker")
    assert claimed is not None and jobs.finish(cache, claimed, "failed", error="a bad shard")
    watch = once()  # a failed step is not retried; the next one goes ahead
    assert [j.argv[1].split("=")[0] for j in jobs.list_jobs(cache)] == ["20", "10"]
    assert watch.steps["failed"] == 1 and watch.steps["queued"] == 1 and watch.last_analysed_step is None
    assert watches.stop(cache, "w") == "stopped"
    until = time.monotonic() + 0.5
    assert run_watcher(cache, lambda: time.monotonic() > until, said.append, tick=0.05) == 0  # stopped: not looked at
    assert len(jobs.list_jobs(cache)) == 2


def _serve(cache: Path, port: int, lines: list[str]) -> subprocess.Popen:
    argv = ["serve", "--port", str(port), "--address", "127.0.0.1", "--cache", str(cache), "--workers", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr_core", *argv],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RLVR_DEMO": "off", "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_serve_follows_a_watch_through_a_restart(tmp_path, monkeypatch) -> None:
    fx = build_run(tmp_path / "fx", ModelShape(n_layers=2), steps=(10, 20, 30))
    cache, run_dir, log = tmp_path / "cache", tmp_path / "live" / "run", tmp_path / "live" / "log.jsonl"
    run_dir.mkdir(parents=True)
    _register_from_the_runs_page(cache, run_dir, fx.base_dir, log, monkeypatch)
    with watches._writing(cache) as con:
        con.execute("UPDATE watches SET interval = 0.5, settle = 1.5")  # a test's pace, not a trainer's
    lines: list[str] = []
    port = free_port()
    proc = _serve(cache, port, lines)
    go = tmp_path / "go"
    writer = slow_writer.start(fx.run_dir, run_dir, 0.3, hold_last=go)
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), 90, "the dashboard's health check")
        wait_until(lambda: 10 in _steps(cache), 180, "step 10 in the cache")
        _stop(proc)  # the restart, in the middle of the run: step 20 is being written or analysed
        assert proc.returncode == 0, "".join(lines)
        proc = _serve(cache, port, lines)
        go.touch()
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), 90, "the dashboard's health check after the restart")
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err
        wait_until(lambda: 30 in _steps(cache), 180, "step 30 in the cache")
        _write_log(log, lambda s: 0.4 + 0.001 * np.minimum(s, 100))  # the trainer's log: reward up, test flat
        wait_until(lambda: any("monitor: " in line for line in lines), 120, "the monitor's line in the server log")
    finally:
        _stop(proc)
        if writer.poll() is None:
            writer.kill()
    said = "".join(lines)
    assert _steps(cache) == [0, 10, 20, 30], said
    analyses = [j for j in jobs.list_jobs(cache) if j.kind == "analyze"]
    per_step = sorted(j.argv[1].split("=")[0] for j in analyses)
    assert per_step == ["10", "20", "30"], said  # each step queued once, across the restart
    assert {j.state for j in analyses} == {"done"}, [(j.argv, j.state, j.error) for j in analyses]
    assert sum("watcher started" in line for line in lines) == 2
    assert "error" not in said.lower(), said  # the partial states were waited for, never an error
    flag = next(line for line in lines if "monitor: " in line)
    assert "run live: monitor: reward rising, test flat or falling since step" in flag, flag
    (watch,) = watches.list_watches(cache)
    assert (watch.last_seen_step, watch.last_analysed_step, watch.steps["done"]) == (30, 30, 3)


def _steps(cache: Path) -> list[int]:
    return Cache(cache).queries().steps("live") if (cache / "runs").is_dir() else []
