"""The `rlvr submit`, `rlvr jobs`, `rlvr cancel` and `rlvr worker` commands (registered by `cli`).

    rlvr submit analyze|compare|demo|logs ARGS...     (ARGS exactly as for the direct command; prints the job id)
    rlvr jobs [--cache DIR] [--json]
    rlvr cancel JOB_ID [--cache DIR]
    rlvr worker [--device cpu|cuda|cuda:N] [--once] [--drain] [--cache DIR] [--lease S] [--backend local|ray] [--address ADDR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path

from . import jobs, store
from .errors import UsageError


def add_parsers(sub, parsers: dict[str, argparse.ArgumentParser]) -> None:
    s = sub.add_parser("submit", help=f"queue a job: {', '.join(jobs.KINDS)} (same arguments as the command)")
    s.add_argument("kind", choices=jobs.KINDS)
    s.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    s.add_argument("--submitted-by", help=argparse.SUPPRESS)
    s.set_defaults(func=lambda a: _cmd_submit(a, parsers))

    j = sub.add_parser("jobs", help="list the jobs of the queue")
    j.add_argument("--cache", help=f"cache folder (default: ${store.CACHE_ENV} or ./{store.DEFAULT_CACHE})")
    j.add_argument("--json", action="store_true", help="print a JSON list")
    j.set_defaults(func=_cmd_jobs)

    c = sub.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("job_id")
    c.add_argument("--cache", help=f"cache folder (default: ${store.CACHE_ENV} or ./{store.DEFAULT_CACHE})")
    c.set_defaults(func=_cmd_cancel)

    w = sub.add_parser("worker", help="run queued jobs, one at a time")
    w.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: the device jobs see")
    w.add_argument("--once", action="store_true", help="run one job (or none) and exit")
    w.add_argument("--drain", action="store_true", help="run jobs until the queue is empty, then exit")
    w.add_argument("--cache", help=f"cache folder (default: ${store.CACHE_ENV} or ./{store.DEFAULT_CACHE})")
    w.add_argument("--lease", type=float, default=jobs.LEASE_SECONDS,
                   help=f"seconds before a silent worker's job is requeued (default {jobs.LEASE_SECONDS:g})")
    w.add_argument("--backend", default="local", choices=["local", "ray"], help="local (default) or ray")
    w.add_argument("--address", default="auto", help="Ray cluster address (`auto`, `local` or host:port)")
    w.set_defaults(func=_cmd_worker)


def _cmd_submit(args: argparse.Namespace, parsers: dict[str, argparse.ArgumentParser]) -> int:
    from .settings import load_settings

    parsed = parsers[args.kind].parse_args(args.args)  # the command's own validation (exit 2 on a bad flag)
    if load_settings().read_only:
        raise UsageError("rlvr submit", "a deployment that runs jobs", "read-only mode (read_only in the config "
                         "file or $RLVR_READ_ONLY)", "ask the server's admin, or unset read-only mode")
    cache = store.resolve_cache(getattr(parsed, "cache", None))
    ident, new = jobs.submit(cache, args.kind, list(args.args), args.submitted_by)
    print(ident)
    if not new:
        print(f"(an identical {args.kind} job is already queued or running: {ident})", file=sys.stderr)
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    rows = jobs.list_jobs(store.resolve_cache(args.cache))
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
        print(f"{job.id}\t{job.kind}\t{job.state}\t{job.progress:.0%}\t{job.submitted_by}\t{_iso(job.created_at)}\t{detail}")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    state = jobs.cancel(store.resolve_cache(args.cache), args.job_id)
    print(f"{args.job_id}: {state}" + (" (stopping at its next tensor or batch)" if state == "running" else ""))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from .worker import WorkerConfig, run_ray, run_worker

    if args.lease <= 1:
        raise UsageError("--lease", "more than 1 second", str(args.lease), "pass --lease 30")
    config = WorkerConfig(Path(store.resolve_cache(args.cache)).resolve(), args.device, args.once, args.drain,
                          args.lease)
    if threading.current_thread() is threading.main_thread():  # stop like Ctrl-C: the job goes back to the queue
        signal.signal(signal.SIGTERM, interrupt)
    try:
        ran = run_ray(config, args.address) if args.backend == "ray" else run_worker(config)
    except KeyboardInterrupt:
        print("worker: stopped", file=sys.stderr)
        return 0
    print(f"worker: {ran} job(s) run")
    return 0


def interrupt(signum, frame) -> None:
    """A SIGTERM handler: unwind like Ctrl-C, so jobs and workers stop cleanly."""
    raise KeyboardInterrupt


def _iso(value: float | None) -> str | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.timezone.utc).isoformat(timespec="seconds")
