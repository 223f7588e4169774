"""The shared-server side: settings (TOML + environment), the data-root allow-list, read-only mode, and
`rlvr serve` end to end (dashboard healthy, a worker running jobs, a killed worker restarted, a clean
stop on SIGTERM)."""

from __future__ import annotations

import os
import signal
import socket
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    cache, port = tmp_path / "cache", _free_port()
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
        wait_until(lambda: jobs.get(cache, job).state == "done", 120, "the first job")
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
    port = _free_port()
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
