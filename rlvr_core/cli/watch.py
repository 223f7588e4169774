"""`rlvr watch`: follow a training run as it writes checkpoints (`pipelines.watch`), in this process; and
the registered watches that `rlvr serve` follows (`rlvr submit watch ...` registers one).

rlvr watch RUN_DIR --base BASE_DIR [--run NAME] [--log PATH] [--interval SECONDS] [--settle SECONDS]
           [--device auto|cpu|cuda] [--modules REGEX] [--no-fits] [--polls N] [--cache DIR]
rlvr watches [--json] [--cache DIR]          (the registered watches: last seen, last analysed, next look)
rlvr unwatch RUN [--cache DIR]               (stop a registered watch; its results stay)
rlvr watcher [--tick SECONDS] [--cache DIR]  (follow every registered watch; `rlvr serve` runs one)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from ..errors import UsageError
from .common import add_cache_flags, cache_of, model_dir, settings_of


def register(sub) -> dict[str, argparse.ArgumentParser]:
    watch = sub.add_parser("watch", help="analyse a run's checkpoints as the trainer writes them (until Ctrl-C)")
    watch.add_argument("run_dir", help="the run folder the trainer writes checkpoints into")
    watch.add_argument("--base", required=True, help="the base model folder")
    watch.add_argument("--run", help="the run's name in the cache (default: the run folder's name)")
    watch.add_argument("--log", help="the training log (file or folder) to ingest again as it grows")
    watch.add_argument("--interval", type=float, default=30.0, help="seconds between two looks (default 30)")
    watch.add_argument(
        "--settle", type=float, default=30.0, help="seconds a checkpoint must stay unchanged before it is read (30)"
    )
    watch.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    watch.add_argument("--modules", help="regex on tensor names; only matching tensors are analysed")
    watch.add_argument("--no-fits", action="store_true", help="skip the power-law fits and ESD histograms")
    watch.add_argument("--polls", type=int, help="stop after N looks (default: until Ctrl-C or SIGTERM)")
    add_cache_flags(watch)
    watch.set_defaults(func=_cmd_watch)

    listing = sub.add_parser("watches", help="list the registered watches (`rlvr submit watch ...`)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    add_cache_flags(listing)
    listing.set_defaults(func=_cmd_watches)
    unwatch = sub.add_parser("unwatch", help="stop a registered watch (its results stay in the cache)")
    unwatch.add_argument("run", help="the watched run's name")
    add_cache_flags(unwatch)
    unwatch.set_defaults(func=_cmd_unwatch)
    watcher = sub.add_parser("watcher", help="follow every registered watch, queueing jobs (rlvr serve runs one)")
    watcher.add_argument("--tick", type=float, default=1.0, help="seconds between two looks at the watches (1)")
    add_cache_flags(watcher)
    watcher.set_defaults(func=_cmd_watcher)
    return {"watch": watch, "watches": listing, "unwatch": unwatch, "watcher": watcher}


def _cmd_watch(args: argparse.Namespace) -> int:
    from ..cache import check_run_name
    from ..pipelines.watch import WatchConfig, watch

    if args.interval <= 0 or args.settle < 0 or (args.polls is not None and args.polls < 1):
        raise UsageError(
            "rlvr watch",
            "--interval > 0, --settle >= 0, --polls >= 1",
            f"{args.interval} / {args.settle} / {args.polls}",
            "e.g. --interval 30 --settle 30",
        )
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(str(run_dir), "the run folder (it may still be empty)", "no such folder", "create it first")
    name = args.run or run_dir.resolve().name
    check_run_name(name)
    config = WatchConfig(
        run_dir=run_dir,
        base=model_dir(args, args.base),
        run=name,
        cache=cache_of(args).root,
        log=Path(args.log) if args.log else None,
        interval=args.interval,
        settle=args.settle,
        device=args.device,
        fits=not args.no_fits,
        modules=args.modules,
        polls=args.polls,
    )
    stop: list[int] = []

    def stopping(signum: int, _frame) -> None:
        stop.append(signum)
        _say(f"{signal.Signals(signum).name}: stopping after the current step")

    previous = {s: signal.signal(s, stopping) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _say(f"watching {run_dir} as run {name} (every {args.interval:g} s, settle {args.settle:g} s)")
        state = watch(config, lambda: bool(stop), _say)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    _say(f"stopped: {len(state.analysed)} step(s) handled, {state.polls} look(s)")
    return 0


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stdout, flush=True)


def _cmd_watches(args: argparse.Namespace) -> int:
    from ..cache import watches
    from .jobs import watch_line

    found = watches.list_watches(cache_of(args).root)
    if args.json:
        print(json.dumps([w.as_dict() for w in found]))
        return 0
    if not found:
        print("no watches: register one with `rlvr submit watch RUN_DIR --base BASE_DIR [--log PATH]`")
    for watch in found:
        print(watch_line(watch))
    return 0


def _cmd_unwatch(args: argparse.Namespace) -> int:
    from ..cache import watches

    print(f"{args.run}: {watches.stop(cache_of(args).root, args.run)}")
    return 0


def _cmd_watcher(args: argparse.Namespace) -> int:
    from ..service.watcher import run_watcher, say_to_stderr

    if args.tick <= 0:
        raise UsageError("--tick", "more than 0 seconds", str(args.tick), "pass --tick 1")
    stop: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _frame: stop.append(signum)) for s in signals}
    try:
        say_to_stderr(f"following the registered watches of {cache_of(args).root}")
        limit = settings_of(args).max_queued_per_user
        looks = run_watcher(cache_of(args).root, lambda: bool(stop), say_to_stderr, args.tick, limit)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    say_to_stderr(f"stopped after {looks} look(s)")
    return 0
