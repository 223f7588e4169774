"""`rlvr submit`, `rlvr jobs`, `rlvr cancel` and `rlvr worker`: the job queue from a shell.

rlvr submit analyze|compare|demo|logs ARGS...     (ARGS exactly as for the direct command; prints the job id)
rlvr submit watch RUN_DIR --base BASE_DIR ...      (`rlvr watch`'s arguments; registers a watch, prints the run)
rlvr jobs [--cache DIR] [--json]                   (the jobs, then the watched runs)
rlvr cancel JOB_ID [--cache DIR]
rlvr worker [--device cpu|cuda|cuda:N] [--once] [--drain] [--cache DIR] [--lease S] [--backend local|ray]
            [--address ADDR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path

from ..cache import queue as jobs
from ..cache import watches
from ..errors import UsageError
from ..system.dataroots import allowed_path
from ..system.devices import parse_device
from . import requests
from .common import add_cache_flags, add_config_flag, cache_of, settings_of


def register(sub) -> dict[str, argparse.ArgumentParser]:
    s = sub.add_parser(
        "submit",
        help=f"queue a job: {', '.join(jobs.KINDS)} (same arguments as the command), or register a watch",
    )
    add_config_flag(s)
    s.add_argument("kind", choices=list(requests.REQUESTS))
    s.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    s.add_argument("--submitted-by", help=argparse.SUPPRESS)
    s.set_defaults(func=_cmd_submit)

    j = sub.add_parser("jobs", help="list the jobs of the queue")
    add_cache_flags(j)
    j.add_argument("--json", action="store_true", help="print a JSON list")
    j.set_defaults(func=_cmd_jobs)

    c = sub.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("job_id")
    add_cache_flags(c)
    c.set_defaults(func=_cmd_cancel)

    w = sub.add_parser("worker", help="run queued jobs, one at a time")
    w.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: the device jobs see")
    w.add_argument("--once", action="store_true", help="run one job (or none) and exit")
    w.add_argument("--drain", action="store_true", help="run jobs until the queue is empty, then exit")
    add_cache_flags(w)
    w.add_argument(
        "--lease",
        type=float,
        default=jobs.LEASE_SECONDS,
        help=f"seconds before a silent worker's job is requeued (default {jobs.LEASE_SECONDS:g})",
    )
    w.add_argument(
        "--nice",
        type=int,
        default=0,
        help="lower the worker's CPU priority (and its jobs') by N steps, 0-19 (default 0; `rlvr serve`: "
        "[server] worker_nice, 10)",
    )
    w.add_argument(
        "--threads",
        type=int,
        default=0,
        help="cap the CPU threads of its jobs (OMP/MKL/OpenBLAS thread counts; default 0: no cap; `rlvr "
        "serve`: [server] worker_threads)",
    )
    w.add_argument("--backend", default="local", choices=["local", "ray"], help="local (default) or ray")
    w.add_argument("--address", default="auto", help="Ray cluster address (`auto`, `local` or host:port)")
    w.set_defaults(func=_cmd_worker)
    return {"submit": s, "jobs": j, "cancel": c, "worker": w}


def _cmd_submit(args: argparse.Namespace) -> int:
    request = requests.from_argv(args.kind, list(args.args))  # the command's own validation (exit 2 on a bad flag)
    inner = argparse.Namespace(
        cache=getattr(request, "cache", None), config=getattr(request, "config", None) or args.config
    )
    settings = settings_of(inner)
    if settings.read_only:
        raise UsageError(
            "rlvr submit",
            "a deployment that runs jobs",
            "read-only mode (read_only in the config file or $RLVR_READ_ONLY)",
            "ask the server's admin, or unset read-only mode",
        )
    if isinstance(request, requests.WatchRequest) and settings.data_roots:
        for path, must_exist in ((request.run_dir, True), (request.base, True), (request.log, False)):
            if path:
                allowed_path(path, [Path(r) for r in settings.data_roots], must_exist=must_exist)
    ident, new = requests.submit(
        Path(settings.cache), request, args.submitted_by, max_per_user=settings.max_queued_per_user
    )
    print(ident)
    if isinstance(request, requests.WatchRequest):
        print(
            f"watching run '{ident}'" + ("" if new else " (it was watched already)") + ": `rlvr serve` (or "
            "`rlvr watcher` with `rlvr worker`) analyses each checkpoint once it is complete; stop with "
            f"`rlvr unwatch {ident}`",
            file=sys.stderr,
        )
    elif not new:
        print(f"(an identical {args.kind} job is already queued or running: {ident})", file=sys.stderr)
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    rows = jobs.list_jobs(cache_of(args).root)
    if args.json:
        out = []
        for job in rows:
            item = job.as_dict()
            for key in ("created_at", "started_at", "finished_at"):
                item[key] = _iso(item[key])
            out.append(item)
        print(json.dumps(out))
        return 0
    if not rows:
        print(f"no jobs: queue one with `rlvr submit {'|'.join(jobs.KINDS)} ...`")
    for job in rows:
        detail = job.error or job.message
        node = f"\tnode {job.node_ip} ({job.node_id[:12]})" if job.node_ip and job.node_id else ""
        print(
            f"{job.id}\t{job.kind}\t{job.state}\t{job.progress:.0%}\t{job.submitted_by}\t{_iso(job.created_at)}\t"
            f"{detail}{node}"
        )
    watched = watches.list_watches(cache_of(args).root, only_watching=True)
    if watched:
        print(f"\nwatched runs ({len(watched)}; `rlvr watches` for details, `rlvr unwatch RUN` to stop):")
        for watch in watched:
            print(watch_line(watch))
    return 0


def watch_line(watch: watches.Watch) -> str:
    """One watched run in a line: its state, last checkpoint seen, last analysed, next look, message."""
    seen = "none" if watch.last_seen_step is None else f"step {watch.last_seen_step}"
    analysed = (
        "none"
        if watch.last_analysed_step is None
        else f"step {watch.last_analysed_step} at {_iso(watch.last_analysed_at)}"
    )
    return (
        f"{watch.run}\t{watch.state}\tlast seen {seen}\tlast analysed {analysed}\t"
        f"next look {_iso(watch.next_poll) if watch.state == 'watching' and watch.next_poll else '-'}\t"
        f"{watch.message}"
    )


def _cmd_cancel(args: argparse.Namespace) -> int:
    state = jobs.cancel(cache_of(args).root, args.job_id)
    print(f"{args.job_id}: {state}" + (" (stopping at its next tensor or batch)" if state == "running" else ""))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from ..service.worker import WorkerConfig, run_ray, run_worker

    if args.lease <= 1:
        raise UsageError("--lease", "more than 1 second", str(args.lease), "pass --lease 30")
    parse_device(args.device, allow_auto=False)
    share_cpu(args.nice, args.threads)
    config = WorkerConfig(
        cache=cache_of(args).root.resolve(),
        device=args.device,
        once=args.once,
        drain=args.drain,
        lease=args.lease,
        config=args.config,
    )
    if threading.current_thread() is threading.main_thread():  # stop like Ctrl-C: the job goes back to the queue
        signal.signal(signal.SIGTERM, interrupt)
    try:
        ran = run_ray(config, args.address) if args.backend == "ray" else run_worker(config)
    except KeyboardInterrupt:
        print("worker: stopped", file=sys.stderr)
        return 0
    print(f"worker: {ran} job(s) run")
    return 0


def share_cpu(nice: int, threads: int) -> None:
    """The worker's share of a busy machine: `nice` steps lower priority, its jobs' threads capped (both
    inherited by the jobs it starts)."""
    from ..system import sharing

    if not 0 <= nice <= 19:
        raise UsageError("--nice", "0 to 19", str(nice), "pass --nice 10 (or 0 to keep the priority)")
    if threads < 0:
        raise UsageError("--threads", "0 (no cap) or more", str(threads), "pass --threads 2")
    sharing.lower_priority(nice)
    if threads:
        sharing.cap_threads(threads)


def interrupt(signum, frame) -> None:
    """A SIGTERM handler: unwind like Ctrl-C, so jobs and workers stop cleanly."""
    raise KeyboardInterrupt


def _iso(value: float | None) -> str | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")
