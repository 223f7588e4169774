"""`rlvr demo`: train the built-in demo (a tiny real GRPO run on CPU) and analyse it into the cache.

rlvr demo [--out DIR] [--cache DIR] [--quick] [--seed N] [--threads N] [--substitute-every K]
          [--no-analyze] [--if-missing]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cache import Cache
from ..errors import UsageError
from .common import add_cache_flags, cache_of


def register(sub) -> dict[str, argparse.ArgumentParser]:
    demo = sub.add_parser("demo", help="train the built-in demo (a tiny real GRPO run on CPU) and analyse it")
    demo.add_argument("--out", default="demo", help="where the base, the runs and the report go (default ./demo)")
    add_cache_flags(demo)
    demo.add_argument("--quick", action="store_true", help="the small version for tests and CI (under a minute)")
    demo.add_argument("--seed", type=int, help="seed of everything (default 0)")
    demo.add_argument("--threads", type=int, default=2, help="torch threads (default 2; fixed for reproducibility)")
    demo.add_argument(
        "--substitute-every",
        type=int,
        metavar="K",
        help="the period of the periodic rank-1 run, in steps (default 25; quick 10)",
    )
    demo.add_argument("--no-analyze", action="store_true", help="train only; do not analyse into the cache")
    demo.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when OUT holds a finished demo and the cache lists its runs",
    )
    demo.set_defaults(func=_cmd_demo)
    return {"demo": demo}


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..cache.queue import Reporter
    from ..demo.build import DemoConfig, quick_config, run_demo, substituted_run

    if args.threads < 1 or (args.substitute_every is not None and args.substitute_every < 1):
        raise UsageError(
            "rlvr demo",
            "--threads and --substitute-every of at least 1",
            f"{args.threads} and {args.substitute_every}",
            "pass positive numbers",
        )
    settings: dict = {
        "out": Path(args.out),
        "cache": cache_of(args).root,
        "threads": args.threads,
        "analyze": not args.no_analyze,
    }
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.substitute_every:
        settings["substitute_every"] = args.substitute_every
    config = quick_config(**settings) if args.quick else DemoConfig(**settings)
    if args.if_missing and _demo_present(config):
        print(f"demo already built: {config.out} (cache {config.cache}); run without --if-missing to rebuild")
        return 0
    start = time.perf_counter()
    reporter = Reporter()

    def progress(message: str, fraction: float | None = None) -> None:
        elapsed = time.perf_counter() - start
        print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)
        eta = "" if not fraction or fraction >= 1 else f" (about {_duration(elapsed * (1 - fraction) / fraction)} left)"
        reporter(fraction, message + eta)

    report = run_demo(config, progress)
    reporter.flush()
    print(f"base test accuracy {report['base_accuracy']:.3f}")
    for run, rows in report["runs"].items():
        curve = ", ".join(f"{r['step']}: {r['eval_accuracy']:.3f}/{r['reward']:.2f}" for r in rows if r["step"])
        print(f"{run} (step: test accuracy/reward) {curve}")
    gains = ", ".join(f"{r['step']}: {r['rank1_accuracy']:.3f} of {r['full_accuracy']:.3f}" for r in report["rank1"])
    print(f"rank-1 substitution of {config.out / 'runs'}/demo-grpo (step: rank-1 of full) {gains}")
    where = f"cache {config.cache} (runs demo-grpo, {substituted_run(config)})" if config.analyze else "not analysed"
    print(f"demo built in {report['timings']['total_s']:.0f} s: {config.out}, {where}")
    return 0


def _demo_present(config) -> bool:
    from ..demo.build import RUN, substituted_run

    if not (config.out / "demo_report.json").is_file():
        return False
    return not config.analyze or {RUN, substituted_run(config)} <= set(Cache(config.cache).queries().runs())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
