"""`rlvr serve`: the dashboard and its workers as one service (what the Docker image runs).

    rlvr serve [--port 8501] [--address 0.0.0.0] [--workers N|auto] [--cache DIR] [--config FILE]

Starts `streamlit run` on the package's `rlvr_dashboard/app.py` (found with importlib: not imported here), the
workers (`auto`: one per visible GPU, else one CPU worker; none in read-only mode) and the watcher (`rlvr
watcher`: follows the registered watches, queueing a job per complete checkpoint; none in read-only mode),
each as its own process that dies with this one (PR_SET_PDEATHSIG). Everything a watch knows is in the cache's
queue database, so a restart of the service resumes every watch. A worker (or the watcher) that exits is
restarted (after 1, 2, 4 ... up to 30 s when it keeps failing); if the dashboard exits the service stops with
status 1. SIGTERM or Ctrl-C stops everything cleanly: SIGTERM to each child (a worker puts its running job
back in the queue), SIGKILL after 15 s. The workers and the watcher run `[server] worker_nice` steps below the
dashboard's CPU priority (default 10) and each worker's jobs on `worker_threads` threads (default: the cores
shared among the workers), so pages stay quick while they compute; every process starts with OpenMP's passive
wait policy (`system.sharing`). On an empty cache with `demo = "auto"` it copies a prebuilt demo cache in
(`demo_cache`) or queues the demo build, which the Runs page shows with its progress.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from ..cache import Cache
from ..cache import queue as jobs
from ..errors import UsageError
from ..system import sharing
from ..system.libc import die_with_parent
from ..system.settings import CACHE_ENV, CONFIG_ENV, Settings


def dashboard_entry() -> Path:
    """The dashboard's entry script, `rlvr_dashboard/app.py` of the installed package (found, not imported:
    this process never loads streamlit). `rlvr serve` checks the dashboard extra first (`cli.NEEDS_EXTRA`)."""
    spec = find_spec("rlvr_dashboard")
    entry = Path(spec.origin).parent / "app.py" if spec and spec.origin else None
    if entry is None or not entry.is_file():
        raise UsageError(
            str(entry or "rlvr_dashboard"),
            "the dashboard's entry script inside the installed rlvr_dashboard package",
            "no such file",
            "reinstall the package: pip install --force-reinstall 'rlvr-lens[dashboard]'",
        )
    return entry


STOP_GRACE = 15.0


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    restart: bool
    """Restart it when it exits (workers); the dashboard's exit stops the service instead."""
    proc: subprocess.Popen | None = None
    exited_at: float | None = None
    started_at: float = 0.0
    failures: int = 0
    """Exits in a row, each within a minute of its start (sets the back-off)."""
    nice: int = 0
    """Steps below this supervisor's CPU priority (workers and the watcher: `[server] worker_nice`)."""

    def start(self) -> None:
        nice = self.nice

        def prepare() -> None:
            die_with_parent()
            sharing.lower_priority(nice)

        # its own session: a Ctrl-C in the terminal reaches this supervisor only, which then stops the children
        self.proc = subprocess.Popen(self.argv, env=self.env, preexec_fn=prepare, start_new_session=True)
        self.exited_at, self.started_at = None, time.monotonic()
        say(f"{self.name} started (pid {self.proc.pid})")


def gpu_ids() -> list[str]:
    """The GPUs this process may use: $CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L` (no torch import)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(row for row in out.splitlines() if row.startswith("GPU "))]


def worker_devices(settings: Settings, gpus: list[str]) -> list[str]:
    """The `--device` of each worker to start."""
    if settings.read_only:
        return []
    wanted = settings.server.workers
    if wanted == "auto":
        return [f"cuda:{g}" for g in gpus] or ["cpu"]
    return [f"cuda:{gpus[i % len(gpus)]}" if gpus else "cpu" for i in range(int(wanted))]


def plan(settings: Settings, cache: Path, config: str | None, entry: Path) -> list[Child]:
    """The dashboard (Streamlit on `entry`, see `dashboard_entry`) and the workers to run."""
    env = {**os.environ, CACHE_ENV: str(cache), "PYTHONUNBUFFERED": "1"}
    if config:
        env[CONFIG_ENV] = str(Path(config).resolve())
    dashboard = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry),
        "--server.port",
        str(settings.server.port),
        "--server.address",
        settings.server.address,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--server.enableXsrfProtection",
        "true",
        "--client.toolbarMode",
        "viewer",
    ]
    if settings.auth.mode == "oidc":
        dashboard += ["--secrets.files", str(Path(settings.auth.secrets_file).resolve())]
    children = [Child("dashboard", dashboard, env, restart=False)]
    devices = worker_devices(settings, gpu_ids())
    threads = settings.server.worker_threads or max(1, len(os.sched_getaffinity(0)) // max(len(devices), 1))
    nice = settings.server.worker_nice
    for i, device in enumerate(devices):
        argv = [sys.executable, "-m", "rlvr_core", "worker", "--cache", str(cache), "--device", device,
                "--threads", str(threads)]  # fmt: skip
        children.append(Child(f"worker {i} ({device})", argv, env, restart=True, nice=nice))
    if not settings.read_only:
        argv = [sys.executable, "-m", "rlvr_core", "watcher", "--cache", str(cache)]
        children.append(Child("watcher", argv, env, restart=True, nice=nice))
    return children


def seed_demo(settings: Settings, cache: Path) -> str:
    """On an empty cache with `demo = "auto"`: copy the prebuilt demo cache in, or queue the demo build."""
    target = Cache(cache)
    if settings.demo == "off" or target.has_runs():
        return 'demo: not needed (the cache has runs, or demo = "off")'
    if settings.read_only:  # read-only never writes: not even the demo into an empty cache
        return "demo: the cache is empty and the service is read-only: nothing to show yet"
    source = Cache(Path(settings.demo_cache).expanduser()) if settings.demo_cache else None
    if source is not None and source.has_runs():
        target.copy_runs_from(source)
        return f"demo: copied the prebuilt demo cache {source.root} into {cache}"
    ident, _ = jobs.submit(cache, "demo", ["--if-missing"], submitted_by="rlvr serve")
    return f"demo: queued the demo build (job {ident}); the Runs page shows its progress"


def supervise(children: list[Child], poll: float = 0.5) -> int:
    """Run the children until SIGTERM/SIGINT (exit 0) or the dashboard's exit (exit 1)."""
    stopping: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stopping.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    status = 0
    try:
        for child in children:
            child.start()
        while True:
            time.sleep(poll)
            if stopping:
                break
            for child in children:
                if _check(child):
                    status = 1
                    stopping.append(0)
    finally:
        _stop_all(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("stopped" if status == 0 else "stopped: the dashboard exited")
    return status


def _check(child: Child) -> bool:
    """Restart an exited worker when its back-off has passed; True when the dashboard has exited."""
    code = child.proc.poll() if child.proc else None
    if code is None and child.exited_at is None:
        return False
    if not child.restart:
        say(f"{child.name} exited with status {code}")
        return True
    now = time.monotonic()
    if child.exited_at is None:
        child.exited_at = now
        child.failures = child.failures + 1 if now - child.started_at < 60 else 1
        say(f"{child.name} exited with status {code}; restarting in {_backoff(child.failures):.0f} s")
    if now - child.exited_at >= _backoff(child.failures):
        child.start()
    return False


def _backoff(failures: int) -> float:
    return float(min(30, 2 ** max(0, failures - 1)))


def _stop_all(children: list[Child]) -> None:
    running = [(c.name, c.proc) for c in children if c.proc is not None and c.proc.poll() is None]
    for _, proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for name, proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {STOP_GRACE:.0f} s: killing it")
            proc.kill()
            proc.wait()


def say(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)
