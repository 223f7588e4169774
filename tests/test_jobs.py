"""The job queue and workers: real `rlvr` processes on tiny real checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvr_core.cache import progress, store
from rlvr_core.cache import queue as jobs
from rlvr_core.fixtures import ModelShape, build_run

pytestmark = pytest.mark.slow


def _rlvr(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvr_core", *map(str, argv)], capture_output=True, text=True, timeout=300, **kw
    )


def _submit(cache: Path, *argv) -> str:
    proc = _rlvr("submit", *argv, "--cache", cache)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _state(cache: Path) -> dict[str, dict]:
    proc = _rlvr("jobs", "--cache", cache, "--json")
    assert proc.returncode == 0, proc.stderr
    return {j["id"]: j for j in json.loads(proc.stdout)}


def test_submit_run_once_and_duplicate(tmp_path, run_fixture):
    cache = tmp_path / "cache"
    args = ("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--run", "r1", "--no-fits")
    first, again = _submit(cache, *args), _submit(cache, *args)
    assert first == again  # an identical queued request is the same job
    proc = _rlvr("worker", "--once", "--cache", cache)
    assert proc.returncode == 0 and "1 job(s) run" in proc.stdout, proc.stderr
    job = _state(cache)[first]
    assert {k: job[k] for k in ("kind", "state", "progress", "error")} == {
        "kind": "analyze",
        "state": "done",
        "progress": 1.0,
        "error": None,
    }
    assert {"id", "kind", "state", "progress", "message", "error", "submitted_by", "created_at"} <= set(job)
    steps = (
        store.open_cache(cache)
        .execute("SELECT list(step ORDER BY step) FROM checkpoints WHERE run = 'r1'")
        .fetchone()[0]
    )
    assert steps == [0, 10, 20]
    assert "run 'r1': analysed steps" in jobs.log_tail(cache, first)
    assert _submit(cache, *args) != first  # once done, the same request is a new job
    assert _rlvr("worker", "--once", "--cache", cache).returncode == 0


def test_failing_job_records_the_cli_message_and_the_worker_goes_on(tmp_path, run_fixture):
    cache = tmp_path / "cache"
    bad = _submit(cache, "analyze", tmp_path / "missing", "--base", run_fixture.base_dir)
    good = _submit(cache, "analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--no-fits")
    from rlvr_core.service.worker import WorkerConfig, run_worker

    assert run_worker(WorkerConfig(cache=cache, drain=True, poll=0.1)) == 2
    state = _state(cache)
    assert state[bad]["state"] == "failed" and "missing" in state[bad]["error"]
    assert "Fix:" in state[bad]["error"] and not state[bad]["error"].startswith("error:")
    assert state[good]["state"] == "done"


def test_cancel_queued_and_running(tmp_path):
    cache = tmp_path / "cache"
    queued = _submit(cache, "demo", "--quick", "--no-analyze", "--out", tmp_path / "d1")
    assert _rlvr("cancel", queued, "--cache", cache).stdout.strip() == f"{queued}: cancelled"
    running = _submit(cache, "demo", "--quick", "--no-analyze", "--out", tmp_path / "d2")
    worker = subprocess.Popen(
        [sys.executable, "-m", "rlvr_core", "worker", "--once", "--cache", str(cache), "--lease", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait(lambda: _state(cache)[running]["state"] == "running" and _state(cache)[running]["message"], 120)
    assert "(stopping" in _rlvr("cancel", running, "--cache", cache).stdout
    worker.wait(timeout=60)
    state = _state(cache)
    assert state[running]["state"] == "cancelled" and state[queued]["state"] == "cancelled"
    assert _rlvr("cancel", "nope", "--cache", cache).returncode == 2


def test_killed_worker_job_finished_once_by_another(tmp_path):
    cache = tmp_path / "cache"
    fx = build_run(
        tmp_path / "data",
        ModelShape(arch="llama", n_layers=4, hidden=96, intermediate=192, kv_dim=48),
        steps=tuple(range(10, 130, 10)),
        layout="trl",
    )
    job = _submit(cache, "analyze", fx.run_dir, "--base", fx.base_dir, "--run", "k", "--workers", "1")
    a = subprocess.Popen(
        [sys.executable, "-m", "rlvr_core", "worker", "--once", "--cache", str(cache), "--lease", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(lambda: len(list((cache / "runs" / "k").glob("step-*"))) >= 2, 120)
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    assert _state(cache)[job]["state"] == "running"
    time.sleep(3.5)  # the lease runs out
    b = _rlvr("worker", "--once", "--cache", cache, "--lease", "3")
    assert b.returncode == 0, b.stderr
    row = _state(cache)[job]
    assert row["state"] == "done" and row["attempt"] == 2
    con = store.open_cache(cache)
    per_step = con.execute(
        "SELECT step, count(*) FROM checkpoints WHERE run = 'k' GROUP BY step ORDER BY step"
    ).fetchall()
    assert per_step == [(s, 1) for s in range(0, 130, 10)]
    n_layers = con.execute(
        "SELECT step, count(*) FROM layers WHERE run = 'k' AND target = 'dW' GROUP BY step"
    ).fetchall()
    assert {n for _, n in n_layers} == {4 * 7}
    log = jobs.log_tail(cache, job, 100000)
    assert "--- attempt 1" in log and "--- attempt 2" in log


def test_two_workers_drain_ten_jobs_without_running_one_twice(tmp_path, run_fixture):
    cache = tmp_path / "cache"
    ids = [
        _submit(
            cache,
            "analyze",
            run_fixture.run_dir,
            "--base",
            run_fixture.base_dir,
            "--run",
            f"r{i}",
            "--no-fits",
            "--quiet",
        )
        for i in range(10)
    ]
    assert len(set(ids)) == 10
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "rlvr_core", "worker", "--drain", "--cache", str(cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    ran = [int(w.communicate(timeout=300)[0].split()[1]) for w in workers]
    assert sum(ran) == 10 and min(ran) >= 1  # both took part
    state = _state(cache)
    assert all(state[i]["state"] == "done" and state[i]["attempt"] == 1 for i in ids)
    assert len({state[i]["worker"] for i in ids}) == 2
    for i in ids:
        assert jobs.log_tail(cache, i, 100000).count("--- attempt") == 1


def test_ray_backend_on_a_local_ray(tmp_path, run_fixture):
    pytest.importorskip("ray")
    cache = tmp_path / "cache"
    ids = [
        _submit(
            cache,
            "analyze",
            run_fixture.run_dir,
            "--base",
            run_fixture.base_dir,
            "--run",
            f"ray{i}",
            "--no-fits",
            "--quiet",
        )
        for i in range(3)
    ]
    bad = _submit(cache, "analyze", tmp_path / "missing", "--base", run_fixture.base_dir)
    proc = _rlvr("worker", "--backend", "ray", "--address", "local", "--device", "cpu", "--drain", "--cache", cache)
    assert proc.returncode == 0 and "4 job(s) run" in proc.stdout, proc.stderr[-2000:]
    state = _state(cache)
    assert all(state[i]["state"] == "done" for i in ids) and state[bad]["state"] == "failed"
    assert all(state[i]["worker"].startswith("ray:") for i in ids)
    runs = {r[0] for r in store.open_cache(cache).execute("SELECT DISTINCT run FROM checkpoints").fetchall()}
    assert runs == {"ray0", "ray1", "ray2"}


def _wait(condition, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if condition():
                return
        except (KeyError, FileNotFoundError):
            pass
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_sigterm_stops_the_worker_and_requeues_its_job(tmp_path):
    cache = tmp_path / "cache"
    job = _submit(cache, "demo", "--quick", "--no-analyze", "--out", tmp_path / "d")
    worker = subprocess.Popen(
        [sys.executable, "-m", "rlvr_core", "worker", "--cache", str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait(lambda: _state(cache)[job]["state"] == "running" and _state(cache)[job]["message"], 120)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    row = _state(cache)[job]
    assert row["state"] == "queued" and row["worker"] is None and "worker was stopped" in row["message"]
    assert "stopped with its worker" in jobs.log_tail(cache, job)


@pytest.mark.slow
def test_a_two_node_ray_cluster_on_loopback_records_each_jobs_node(tmp_path, run_fixture):
    """Two Ray nodes on this machine (127.0.0.2 and 127.0.0.3: Ray rewrites 127.0.0.1 to the host's address),
    one CPU each; two analyses dispatched at once run one per node, and `rlvr jobs` shows each job's node."""
    import socket

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    head = ["ray", "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=1",
            "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    second = ["ray", "start", f"--address=127.0.0.2:{port}", "--node-ip-address=127.0.0.3", "--num-cpus=1",
              "--disable-usage-stats"]  # fmt: skip
    ray_bin = str(Path(sys.executable).parent / "ray")
    try:
        for argv in (head, second):
            started = subprocess.run([ray_bin, *argv[1:]], env=env, capture_output=True, text=True, timeout=180)
            assert started.returncode == 0, started.stderr[-2000:]
        cache = tmp_path / "cache"
        ids = [_submit(cache, "analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--run", f"n{i}",
                       "--no-fits", "--quiet") for i in range(2)]  # fmt: skip
        proc = _rlvr("worker", "--backend", "ray", "--address", f"127.0.0.2:{port}", "--device", "cpu", "--drain",
                     "--cache", cache, env=env)  # fmt: skip
        assert proc.returncode == 0 and "2 job(s) run" in proc.stdout, proc.stderr[-2000:]
        listed = {j.id: j for j in jobs.list_jobs(cache)}
        assert all(listed[i].state == "done" for i in ids)
        assert {listed[i].node_ip for i in ids} == {"127.0.0.2", "127.0.0.3"}
        assert all(listed[i].node_id and len(listed[i].node_id) > 20 for i in ids)
        shown = _rlvr("jobs", "--cache", cache).stdout
        for i in ids:
            line = next(x for x in shown.splitlines() if x.startswith(i))
            assert f"node {listed[i].node_ip} ({listed[i].node_id[:12]})" in line
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _open_queue_at(args: tuple[str, float, int]) -> str | None:
    """In a fresh process, at wall time `at`: what `rlvr serve`'s children do first on a new cache."""
    from rlvr_core.cache import watches

    root, at, which = args
    while time.time() < at:
        pass
    try:
        if which % 2:  # the watcher: reads the watches, then writes one
            watches.list_watches(Path(root), only_watching=True)
            watches.update(Path(root), "none", message="")
        else:  # a worker: claims from the queue, and the Jobs page lists it
            jobs.claim(Path(root), f"worker-{which}")
            jobs.list_jobs(Path(root))
        return None
    except Exception as exc:  # the test reports what each process met
        return f"{type(exc).__name__}: {exc}"


def test_processes_starting_together_on_a_new_cache_all_open_the_queue(tmp_path):
    """Found in CI: `rlvr serve`'s watcher and worker, started together on a new cache, met a half-made queue
    ("database is locked", "no such table: jobs") and the message told the user to move the queue aside."""
    import multiprocessing

    failures: list[str] = []
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        for round_ in range(15):
            root, at = str(tmp_path / f"cache-{round_}"), time.time() + 0.3
            failures += [f for f in pool.map(_open_queue_at, [(root, at, k) for k in range(4)]) if f]
    assert failures == []


def test_a_queue_held_locked_says_so_and_never_says_to_move_it(tmp_path, monkeypatch):
    """A lock held too long is one clear error for a command, and a skipped progress line for a job."""
    ident, _ = jobs.submit(tmp_path, "demo", ["--quick"])
    monkeypatch.setattr(jobs, "BUSY_SECONDS", 0.3)
    monkeypatch.setenv(jobs.JOB_ENV, ident)
    monkeypatch.setenv(jobs.DB_ENV, str(jobs.db_path(tmp_path)))
    with jobs.opened(tmp_path) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(jobs.CacheError) as caught:
            jobs.submit(tmp_path, "demo", ["--quick", "--seed", "1"])
        progress.report(0.5, "step 3 of 6")  # skipped, not raised: the job goes on
        holder.execute("ROLLBACK")
    progress.report(0.5, "step 3 of 6")
    assert jobs.get(tmp_path, ident).message == "step 3 of 6"
    message = str(caught.value)
    assert "jobs.sqlite" in message and "locked" in message and "fuser" in message, message
    assert "do not move" in message and "mv " not in message, message
    assert [j.argv for j in jobs.list_jobs(tmp_path)] == [["--quick"]]


def test_an_older_queue_file_gains_the_columns_added_since(tmp_path):
    import sqlite3

    old = jobs._SCHEMA.replace(", node_ip TEXT, node_id TEXT)", ")")
    assert old != jobs._SCHEMA
    with sqlite3.connect(jobs.db_path(tmp_path)) as con:
        con.executescript(old)
    ident, _ = jobs.submit(tmp_path, "demo", ["--quick"])
    with jobs.opened(tmp_path) as con:
        assert {"node_ip", "node_id"} <= {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
    assert jobs.get(tmp_path, ident).node_ip is None
