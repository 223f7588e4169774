"""The shared-server side: settings (TOML + environment), the data-root allow-list, read-only mode, and
`rlvr serve` end to end (dashboard healthy, a worker running jobs, a killed worker restarted, a clean
stop on SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from rlvr_core.cache import queue as jobs
from rlvr_core.cli import main
from rlvr_core.errors import ConfigError, PathNotAllowedError
from rlvr_core.fixtures import ModelShape, build_run
from rlvr_core.service import serve
from rlvr_core.service.dataroots import allowed_path, find_runs
from rlvr_core.system.settings import load_settings
from rlvr_core.system.sharing import WAIT_POLICY

from .browser import free_port
from .conftest import wait_until


def test_settings_from_a_file_with_environment_overrides(tmp_path):
    config = tmp_path / "rlvr.toml"
    config.write_text(
        'cache = "/data/cache"\ndata_roots = ["/models", "/opt/demo"]\nread_only = true\n'
        '[auth]\nmode = "header"\nheader = "X-Remote-User"\n[server]\nport = 9000\nworkers = 2\n'
    )
    s = load_settings(config, environ={})
    assert (s.cache, s.data_roots, s.read_only) == ("/data/cache", ("/models", "/opt/demo"), True)
    assert (s.auth.mode, s.auth.header, s.server.port, s.server.workers) == ("header", "X-Remote-User", 9000, "2")
    s = load_settings(
        config,
        environ={
            "RLVR_DATA_ROOTS": "/a:/b",
            "RLVR_READ_ONLY": "0",
            "RLVR_PORT": "8600",
            "RLVR_AUTH": "none",
            "RLVR_CACHE": "/c",
        },
    )
    assert (s.data_roots, s.read_only, s.server.port, s.auth.mode, s.cache) == (("/a", "/b"), False, 8600, "none", "/c")
    assert load_settings(None, environ={}).data_roots == () and load_settings(None, environ={}).auth.mode == "none"


@pytest.mark.parametrize(
    "text, fragments",
    [
        ('cahce = "/x"\n', ["cahce", "unknown key 'cahce'", "Fix: check the spelling"]),
        ('data_roots = "/models"\n', ["data_roots", "expected a list", "'/models'", 'data_roots = ["/models"]']),
        ('[auth]\nmode = "ldap"\n', ["[auth] mode", "one of none, oidc, header", "'ldap'"]),
        ('[auth]\nmode = "oidc"\n', ["secrets_file", "none", "RLVR_AUTH_SECRETS"]),
        ('[server]\nworkers = "many"\n', ["[server] workers", "'many'"]),
        ("[server]\nworker_nice = 25\n", ["[server] worker_nice", "0 to 19", "25", "worker_nice = 10"]),
        ("[server]\nworker_threads = -1\n", ["[server] worker_threads", "-1", "worker_threads = 2"]),
        ("read_only = \n", ["valid TOML"]),
    ],
)
def test_bad_settings_say_key_expected_found_fix(tmp_path, text, fragments):
    config = tmp_path / "rlvr.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    message = str(info.value)
    assert str(config) in message and " expected " in message and ". Fix: " in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_environment_errors_name_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"\$RLVR_READ_ONLY: expected 1 or 0, found 'maybe'"):
        load_settings(None, environ={"RLVR_READ_ONLY": "maybe"})
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_data_roots_refuse_dotdot_outside_paths_and_symlink_escapes(tmp_path):
    root, outside = tmp_path / "models", tmp_path / "secret"
    (root / "run-a" / "checkpoint-10").mkdir(parents=True)
    (root / "team" / "run-b" / "global_step_5").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "alias").symlink_to(root / "run-a")
    roots = [root]
    assert allowed_path(root / "run-a", roots) == (root / "run-a").resolve()
    assert allowed_path("run-a", roots) == (root / "run-a").resolve()  # relative: under a root
    assert allowed_path(root / "alias", roots) == (root / "run-a").resolve()  # a symlink that stays inside
    for bad in (root / ".." / "secret", "../secret", outside, "/etc/passwd", root / "escape", root / "escape" / "x"):
        with pytest.raises(PathNotAllowedError) as info:
            allowed_path(bad, roots)
        message = str(info.value)
        assert f"expected a path under the data roots {root}" in message and "Fix: " in message, message
    assert "it leads to" in str(pytest.raises(PathNotAllowedError, allowed_path, root / "escape", roots).value)
    assert allowed_path(outside, []) == outside.resolve()  # no roots configured: a laptop, anything goes
    assert find_runs(roots) == [(root / "run-a").resolve(), (root / "team" / "run-b").resolve()]


def test_read_only_refuses_submissions_and_starts_no_worker(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLVR_READ_ONLY", "1")
    assert main(["submit", "demo", "--quick", "--cache", str(tmp_path / "cache")]) == 2
    assert "read-only mode" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "jobs.sqlite").exists()
    assert serve.worker_devices(load_settings(None), ["0", "1"]) == []
    monkeypatch.delenv("RLVR_READ_ONLY")
    settings = load_settings(None)
    assert serve.worker_devices(settings, []) == ["cpu"] and serve.worker_devices(settings, ["0", "1"]) == [
        "cuda:0",
        "cuda:1",
    ]


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.slow
def test_serve_end_to_end(tmp_path):
    fx = build_run(tmp_path / "models" / "run", ModelShape(n_layers=2), steps=(10, 20), layout="trl")
    demo_cache = tmp_path / "prebuilt"
    assert (
        main(
            [
                "analyze",
                str(fx.run_dir),
                "--base",
                str(fx.base_dir),
                "--cache",
                str(demo_cache),
                "--run",
                "demo-grpo",
                "--quiet",
            ]
        )
        == 0
    )
    cache, port = tmp_path / "cache", free_port()
    config = tmp_path / "rlvr.toml"
    config.write_text(
        f'data_roots = ["{tmp_path / "models"}"]\ndemo_cache = "{demo_cache}"\n[server]\naddress = "127.0.0.1"\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlvr_core",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--cache",
            str(cache),
            "--workers",
            "1",
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k not in WAIT_POLICY},  # `rlvr serve` must set them itself
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()

    def pid_of(name: str, after: int = 0) -> int | None:
        hits = [line for line in lines[after:] if line.startswith(f"serve: {name} started (pid ")]
        return int(hits[-1].rsplit("pid ", 1)[1].rstrip(")\n")) if hits else None

    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), 90, "the dashboard's health check")
        assert any("copied the prebuilt demo cache" in line for line in lines)
        assert (cache / "runs" / "demo-grpo").is_dir()
        first = wait_until(lambda: pid_of("worker 0 (cpu)"), 30, "the worker")
        job, _ = jobs.submit(cache, "analyze", [str(fx.run_dir), "--base", str(fx.base_dir), "--run", "one", "--quiet"])
        seen_processes: dict[int, tuple[str, dict[str, str], int]] = {}
        done = lambda: _watch(first, seen_processes) or jobs.get(cache, job).state == "done"  # noqa: E731
        wait_until(done, 120, "the first job", interval=0.02)
        _assert_shares_the_cpu(proc.pid, pid_of("dashboard"), first, seen_processes)
        seen = len(lines)
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: pid_of("worker 0 (cpu)", seen), 30, "the worker's restart")
        assert second != first and _alive(second)
        assert any("worker 0 (cpu) exited with status -9; restarting" in line for line in lines[seen:])
        job, _ = jobs.submit(cache, "analyze", [str(fx.run_dir), "--base", str(fx.base_dir), "--run", "two", "--quiet"])
        wait_until(lambda: jobs.get(cache, job).state == "done", 120, "a job on the restarted worker")
        dashboard = pid_of("dashboard")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        time.sleep(0.5)
        assert not _alive(second) and not _alive(dashboard) and not _healthy(f"http://127.0.0.1:{port}")
        assert lines[-1].strip() == "serve: stopped"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _process(pid: int) -> tuple[str, dict[str, str], int] | None:
    """(command line, environment at its start, nice value) of a live process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        environ = dict(
            e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in e
        )
        nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    except (OSError, ValueError):
        return None
    return cmdline, environ, nice


def _watch(root: int, seen: dict[int, tuple[str, dict[str, str], int]]) -> bool:
    """Record every live descendant of `root` (the worker's jobs and their spawned fit processes); False."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    family, grown = {root}, True
    while grown:
        more = {p for p, parent in parents.items() if parent in family} - family
        family |= more
        grown = bool(more)
    for pid in family - {root} - set(seen):
        found = _process(pid)
        if found is not None:
            seen[pid] = found
    time.sleep(0.05)
    return False


def _assert_shares_the_cpu(serve_pid: int, dashboard: int | None, worker: int, seen) -> None:
    """Every process `rlvr serve` started runs with OpenMP's passive wait policy (though the service was
    started without it); the worker, its job and the job's fit process run 10 steps nicer than the
    dashboard, the job with its threads capped."""
    start = _process(serve_pid)
    assert start is not None and "OMP_WAIT_POLICY" not in start[1]
    for pid in (dashboard, worker):
        assert pid is not None
        found = _process(pid)
        assert found is not None and found[1].get("OMP_WAIT_POLICY") == "PASSIVE", found
    assert _process(worker)[2] == min(start[2] + 10, 19) and _process(dashboard)[2] == start[2]
    jobs_seen = [p for p in seen.values() if " analyze " in p[0]]
    fits = [p for p in seen.values() if "multiprocessing" in p[0]]
    assert jobs_seen and fits, [p[0] for p in seen.values()]
    for cmdline, environ, nice in jobs_seen + fits:
        assert environ.get("OMP_WAIT_POLICY") == "PASSIVE" and environ.get("KMP_BLOCKTIME") == "0", cmdline
        assert nice >= start[2] + 10 or nice == 19, cmdline
    threads = str(max(1, len(os.sched_getaffinity(0))))  # one worker: every core
    assert all(environ.get("OMP_NUM_THREADS") == threads for _, environ, _ in jobs_seen)


def test_seed_demo_queues_the_build_on_an_empty_cache_only(tmp_path, monkeypatch):
    for var in ("RLVR_DEMO", "RLVR_DEMO_CACHE", "RLVR_READ_ONLY", "RLVR_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    cache = tmp_path / "cache"
    settings = load_settings(None)
    assert "queued the demo build" in serve.seed_demo(settings, cache)
    assert [(j.kind, j.argv, j.submitted_by) for j in jobs.list_jobs(cache)] == [
        ("demo", ["--if-missing"], "rlvr serve")
    ]
    assert "queued the demo build" in serve.seed_demo(settings, cache)  # the same job, not a second one
    assert len(jobs.list_jobs(cache)) == 1
    (cache / "runs" / "r" / "step-0").mkdir(parents=True)
    assert "not needed" in serve.seed_demo(settings, cache)
    monkeypatch.setenv("RLVR_READ_ONLY", "1")
    assert "read-only" in serve.seed_demo(load_settings(None), tmp_path / "other")
    assert not (tmp_path / "other" / "jobs.sqlite").exists()


@pytest.mark.slow
def test_ctrl_c_in_the_terminal_stops_the_service_cleanly(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlvr_core",
            "serve",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--cache",
            str(tmp_path / "cache"),
            "--workers",
            "1",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RLVR_DEMO": "off"},
        start_new_session=True,
    )
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), 90, "the dashboard's health check")
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        _, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "exited with status" not in err and err.strip().splitlines()[-1] == "serve: stopped"


def test_worker_priority_and_threads_refuse_bad_values(tmp_path, cli):
    rc, _, err = cli("worker", "--nice", "25", "--once", "--cache", tmp_path / "c")
    assert rc == 2 and "--nice" in err and "0 to 19" in err and "25" in err
    rc, _, err = cli("worker", "--threads", "-2", "--once", "--cache", tmp_path / "c")
    assert rc == 2 and "--threads" in err and "-2" in err
