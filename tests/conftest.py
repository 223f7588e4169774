"""Shared fixtures: tiny real checkpoints written by rlvr_core.fixtures, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvr_core.cli import main
from rlvr_core.fixtures import ModelShape, build_run


@pytest.fixture
def run_fixture(tmp_path: Path):
    """A Llama-named base + TRL run with steps 10 and 20 (bf16, 2 shards), planted rank-1 updates."""
    return build_run(tmp_path / "data", ModelShape(arch="llama"), steps=(10, 20), layout="trl")


@pytest.fixture
def cli(capsys):
    """Run `rlvr ...` in-process; returns (exit code, stdout, stderr)."""

    def call(*argv: str) -> tuple[int, str, str]:
        rc = main([str(a) for a in argv])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return call


def wait_until(predicate, seconds: float, what: str, interval: float = 0.3):
    """Poll `predicate` until it returns something truthy (returned), or fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {seconds:.0f} s")


def parquet_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.parquet")) if cache.exists() else []


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory) -> tuple[Path, Path, str]:
    """`rlvr demo --quick` run once per session through the real entry point: (out, cache, stdout)."""
    root = tmp_path_factory.mktemp("demo")
    out, cache = root / "demo", root / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr_core", "demo", "--quick", "--out", str(out), "--cache", str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, cache, proc.stdout


def benchmarks_dir() -> Path | None:
    """The shared benchmark sets: $RLVR_DATA, else ../shared/data/benchmarks next to the project."""
    for candidate in (
        os.environ.get("RLVR_DATA"),
        Path(__file__).resolve().parents[2] / "shared/data/benchmarks",
        Path("/work/shared/data/benchmarks"),
    ):
        if candidate and (Path(candidate) / "math500.jsonl").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def installed_dashboard(tmp_path_factory):
    """The wheel installed with its dashboard extra in a fresh venv (tests/installed.py), and `rlvr serve` run
    there on an empty cache until the demo it queues is built; the serve stopped. Returns (install, wheel,
    cache, the jobs' rows). The full demo's cache it leaves is the one test_dashboard_rules measures."""
    from .installed import build_wheel, install, serving, wait_jobs_done

    root = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(root / "dist")
    app = install(root / "dashboard", wheel, "dashboard")
    cache = root / "cache"
    with serving(app, cache):
        rows = wait_jobs_done(app, cache, 1800)
    return app, wheel, cache, rows
