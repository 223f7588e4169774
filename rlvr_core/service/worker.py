"""`rlvr worker`: claims jobs from the queue (`jobs`) one at a time and runs each as its own process.

Each job runs as `python -m rlvr_core <kind> <argv> --cache <cache>` with its output in the job's log,
$RLVR_JOB_ID set (so the command reports its progress) and only the worker's device visible
(CUDA_VISIBLE_DEVICES). While it runs, the worker renews the job's lease every few seconds; a requested
cancellation terminates the process (SIGTERM: it stops at its next tensor or batch; SIGKILL 20 s later).
A worker stopped with SIGTERM (or Ctrl-C) stops its job the same way and puts it back in the queue.
The job's process dies with its worker (PR_SET_PDEATHSIG), so a killed worker leaves no orphan that
could finish the job a second time once another worker has taken it over. Results are safe to redo:
every cache write is an atomic folder swap and analyses skip steps already cached unchanged.

The Ray backend (`--backend ray`) runs the same `run_job` as a Ray task asking for one GPU (or one CPU
with `--device cpu`) per job, on whichever node Ray picks; the cache folder must be shared by the nodes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..cache import queue as jobs
from ..errors import UsageError
from ..system.devices import visible_devices
from ..system.libc import die_with_parent
from ..system.settings import CONFIG_ENV


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """Settings of `rlvr worker`. Fields mirror its flags."""

    cache: Path
    """The cache whose queue the worker serves (jobs write their results there)."""
    device: str = "cpu"
    """`cpu`, `cuda` or `cuda:N`: the device the job's process sees."""
    once: bool = False
    """Run at most one job, then exit."""
    drain: bool = False
    """Exit when the queue is empty (instead of waiting for more jobs)."""
    lease: float = jobs.LEASE_SECONDS
    """Seconds a claim lasts without a heartbeat; a killed worker's job is requeued after this."""
    poll: float = 1.0
    """Seconds between looks at an empty queue."""
    name: str | None = None
    """The worker's name in the queue (default host:pid:device)."""
    config: str | None = None
    """The settings file the worker was started with (`--config`): its jobs read it too ($RLVR_CONFIG)."""


def run_worker(config: WorkerConfig, max_jobs: int | None = None) -> int:
    """Claim and run jobs until interrupted (or one with `once`); returns how many ran."""
    name = config.name or f"{socket.gethostname()}:{os.getpid()}:{config.device}"
    ran = 0
    while max_jobs is None or ran < max_jobs:
        job = jobs.claim(config.cache, name, config.lease)
        if job is None:
            if config.once or config.drain:
                break
            time.sleep(config.poll)
            continue
        run_job(job, config)
        ran += 1
        if config.once:
            break
    return ran


def run_job(job: jobs.Job, config: WorkerConfig) -> str:
    """Run one claimed job to its end; returns the state recorded (or `lost`)."""
    cache = Path(config.cache).resolve()
    log = jobs.log_path(cache, job.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = list(job.argv) + ([] if "--cache" in job.argv else ["--cache", str(cache)])
    env = {
        **os.environ,
        jobs.JOB_ENV: job.id,
        jobs.DB_ENV: str(jobs.db_path(cache)),
        jobs.USER_ENV: job.submitted_by or "",  # the job runs as its submitter: `rlvr analyze` claims runs for them
        "PYTHONUNBUFFERED": "1",
        "CUDA_VISIBLE_DEVICES": visible_devices(config.device),
    }
    if config.config:
        env[CONFIG_ENV] = str(Path(config.config).resolve())
    with log.open("a", encoding="utf-8") as out:
        out.write(f"--- attempt {job.attempt} on {job.worker}: rlvr {job.kind} {' '.join(argv)}\n")
        out.flush()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rlvr_core", job.kind, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
                cwd=job.cwd if job.cwd and Path(job.cwd).is_dir() else None,
            )
        except (OSError, ValueError) as exc:  # e.g. E2BIG: the job fails once, with the reason; the worker goes on
            reason = f"the job's process could not start: {type(exc).__name__}: {exc}"
            out.write(f"--- {reason}\n")
            jobs.finish(cache, job, "failed", error=reason)
            return "failed"
        try:
            outcome = _watch(proc, job, config)
        except KeyboardInterrupt:  # the worker is stopping (SIGTERM, Ctrl-C): stop the job, give it back
            _stop(proc, grace=10.0)
            jobs.release(cache, job)
            out.write(f"--- attempt {job.attempt} stopped with its worker; the job is queued again\n")
            raise
    if outcome == "lost":
        return "lost"
    if outcome == "cancel":
        jobs.finish(cache, job, "cancelled", message="cancelled")
        return "cancelled"
    if proc.returncode == 0:
        jobs.finish(cache, job, "done", message="done")
        return "done"
    jobs.finish(cache, job, "failed", error=failure_message(jobs.log_tail(cache, job.id), proc.returncode))
    return "failed"


def _watch(proc: subprocess.Popen, job: jobs.Job, config: WorkerConfig) -> str:
    """Heartbeat until the process ends: `ended`, `cancel` (stopped on request) or `lost`."""
    every = max(0.2, min(5.0, config.lease / 4))
    while True:
        try:
            proc.wait(timeout=every)
            return "ended"
        except subprocess.TimeoutExpired:
            pass
        state = jobs.heartbeat(config.cache, job, config.lease)
        if state in ("cancel", "lost"):
            _stop(proc)
            return state


def _stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def failure_message(log_tail: str, returncode: int) -> str:
    """The one-line `error: ...` the command printed, else the last line of its output, with the status."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip() and not line.startswith("---")]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (the system's out-of-memory killer sends SIGKILL)" if returncode == -signal.SIGKILL else ""
        return f"the job's process was killed by {name}{hint}; last output: {lines[-1] if lines else 'none'}"
    return f"exit status {returncode}; last output: {lines[-1] if lines else 'none'}"


def run_ray(config: WorkerConfig, address: str, max_jobs: int | None = None, in_flight: int | None = None) -> int:
    """Dispatch queued jobs as Ray tasks (one GPU each, or one CPU for `--device cpu`) until interrupted."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--backend ray", "the ray package", "not installed", "pip install -r requirements-ray.txt"
        ) from None
    ray.init(
        address=None if address == "local" else address,
        ignore_reinit_error=True,
        log_to_driver=False,
        include_dashboard=False,
    )
    gpu = config.device != "cpu"
    task = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1, max_retries=0)(_ray_task)
    limit = in_flight or max(1, int(ray.cluster_resources().get("GPU" if gpu else "CPU", 1)))
    name = config.name or f"ray:{socket.gethostname()}:{os.getpid()}"
    pending: list = []
    dispatched = 0
    while max_jobs is None or dispatched < max_jobs or pending:
        if len(pending) < limit and (max_jobs is None or dispatched < max_jobs):
            job = jobs.claim(config.cache, name, config.lease)
            if job is not None:
                pending.append(task.remote(job, config))
                dispatched += 1
                continue
        if not pending and (config.once or config.drain):
            break
        done, pending = ray.wait(pending, timeout=config.poll) if pending else ([], [])
        ray.get(done)
        if not pending and not done:
            time.sleep(config.poll)
    return dispatched


def _ray_task(job: jobs.Job, config: WorkerConfig) -> str:
    import ray

    device = "cuda" if config.device != "cpu" else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to the granted GPU
    jobs.set_node(config.cache, job.id, ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id())
    return run_job(job, replace(config, device=device))
