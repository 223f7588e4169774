"""The package as a user installs it: the wheel built from this checkout (`pip wheel`), installed non-editable
into a fresh virtual environment with the tested versions as constraints (requirements.txt), and its
commands run from a folder outside the checkout with nothing of the checkout on the path. Used by
tests/test_wheel.py and by the full-demo fixture (the demo `rlvr serve` builds in such an install)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "rlvr_core", "rlvr_dashboard")
"""What the wheel is built from (a copy: the build writes nothing into the checkout)."""


def build_wheel(out: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the checkout's package sources; the wheel's path."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("rlvr_lens-*.whl")
    return wheel


@dataclass(frozen=True)
class Install:
    """A fresh virtual environment holding the wheel (and the extras asked for)."""

    venv: Path
    home: Path
    """The working folder its commands run in (not the checkout)."""

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a user's shell with this venv activated: no PYTHONPATH, nothing of the checkout."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RLVR_"))}
        return {**keep, "PATH": f"{self.venv / 'bin'}:{keep.get('PATH', '')}", "VIRTUAL_ENV": str(self.venv),
                "HOME": str(self.home), **extra}  # fmt: skip

    def run(self, *argv: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
        """A command of the venv (`rlvr`, `python`, ...) run in `home`."""
        exe = self.venv / "bin" / argv[0]
        return subprocess.run([str(exe), *argv[1:]], cwd=self.home, env=self.env(**extra), capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    def start(self, *argv: str, **extra: str) -> subprocess.Popen:
        """A long-running command of the venv (`rlvr serve ...`), its output to `home`/serve.log."""
        log = open(self.home / "serve.log", "ab")  # noqa: SIM115 (closed with the process by the caller's kill)
        return subprocess.Popen([str(self.venv / "bin" / argv[0]), *argv[1:]], cwd=self.home, env=self.env(**extra),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def install(root: Path, wheel: Path, extras: str = "") -> Install:
    """A new venv under `root` with `wheel[extras]` installed, pinned by requirements.txt."""
    venv, home = root / "venv", root / "home"
    home.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    target = f"{wheel}[{extras}]" if extras else str(wheel)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", target, "-c", str(ROOT / "requirements.txt")]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=1200, cwd=home)
    assert done.returncode == 0, done.stderr[-3000:]
    return Install(venv, home)


def wait_healthy(app: Install, proc: subprocess.Popen, seconds: float, **extra: str) -> None:
    """Until the installed health check (the Docker image's) passes with these settings; fails on an exit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, (app.home / "serve.log").read_text()[-3000:]
        if app.run("python", "-m", "rlvr_core.service.health", timeout=30, **extra).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError("rlvr serve did not become healthy: " + (app.home / "serve.log").read_text()[-3000:])


def wait_jobs_done(app: Install, cache: Path, seconds: float) -> list[dict]:
    """Until every queued job of `cache` has finished (the demo build); their rows (`rlvr jobs --json`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = app.run("rlvr", "jobs", "--json", "--cache", str(cache), timeout=60)
        rows = json.loads(done.stdout or "[]")
        if rows and all(row["state"] in ("done", "failed", "cancelled") for row in rows):
            return rows
        time.sleep(5)
    raise AssertionError("the queued jobs did not finish: " + (app.home / "serve.log").read_text()[-3000:])


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM to `rlvr serve` (it stops its children), its exit status."""
    proc.terminate()
    return proc.wait(timeout=60)


@contextmanager
def serving(app: Install, cache: Path, seconds: float = 180) -> Iterator[tuple[subprocess.Popen, str]]:
    """`rlvr serve` of `app` on `cache`, on a free port of 127.0.0.1 (not the default 8501) set through the
    environment, until healthy; yields (process, url); then stops it, which must end with status 0."""
    from .browser import free_port

    port = free_port()
    assert port != 8501
    settings = {"RLVR_PORT": str(port), "RLVR_ADDRESS": "127.0.0.1", "RLVR_CACHE": str(cache)}
    proc = app.start("rlvr", "serve", **settings)
    try:
        wait_healthy(app, proc, seconds, **settings)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        assert stop(proc) == 0
