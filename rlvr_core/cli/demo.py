"""`rlvr demo`: train the built-in demo (a tiny real GRPO run on CPU) and analyse it into the cache.

rlvr demo [--model tiny|smollm2] [--out DIR] [--cache DIR] [--quick] [--steps N] [--seed N] [--threads N]
          [--substitute-every K] [--no-analyze] [--if-missing]

`--model tiny` (the default) is the built-in 0.8 M-parameter demo (`demo.build`); `--model smollm2` the
real-model demo, SmolLM2-135M-Instruct trained with TRL's GRPOTrainer (`demo.real`).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..cache import Cache
from ..errors import UsageError
from .common import add_cache_flags, cache_of


def register(sub) -> dict[str, argparse.ArgumentParser]:
    demo = sub.add_parser("demo", help="train the built-in demo (a tiny real GRPO run on CPU) and analyse it")
    demo.add_argument(
        "--model",
        choices=MODELS,
        default="tiny",
        help="tiny: the built-in 0.8 M-parameter model (default); smollm2: SmolLM2-135M-Instruct with TRL "
        "(needs requirements-dev.txt and requirements-models.txt; see docs/explanations/real-model.md)",
    )
    demo.add_argument(
        "--out", help="where the base, the runs and the report go (default ./demo; --model smollm2: ./demo-smollm2)"
    )
    add_cache_flags(demo)
    demo.add_argument(
        "--quick",
        action="store_true",
        help="the small version for tests and CI (tiny: under a minute; smollm2: ~3 min)",
    )
    demo.add_argument("--steps", type=int, metavar="N", help="GRPO steps of each run (default: the model's own)")
    demo.add_argument(
        "--seeds",
        metavar="LIST",
        help="several seeds, e.g. 0-4 or 0,3,7 (tiny model): each seed's demo with a k sweep, summarised with "
        "95%% intervals in OUT/seeds_report.json (default OUT ./demo-seeds)",
    )
    demo.add_argument(
        "--sweep",
        metavar="K,K,...",
        default="10,25,50",
        help="with --seeds: the periods k of the periodic rank-1 runs (default 10,25,50)",
    )
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


MODELS = ("tiny", "smollm2")


def _cmd_demo(args: argparse.Namespace) -> int:
    positive = [args.threads, *(v for v in (args.substitute_every, args.steps) if v is not None)]
    if min(positive) < 1:
        raise UsageError(
            "rlvr demo",
            "--threads, --substitute-every and --steps of at least 1",
            f"{args.threads}, {args.substitute_every} and {args.steps}",
            "pass positive numbers",
        )
    if args.model == "smollm2":
        if args.seeds:
            raise UsageError("rlvr demo --seeds", "--model tiny", "--model smollm2", "drop --seeds or --model")
        return _cmd_real(args)
    pins = _pin_kernels()  # before anything imports torch
    if args.seeds:
        return _cmd_seeds(args, pins)
    from ..demo.build import RUN, DemoConfig, quick_config, run_demo, substituted_run

    settings = _settings(args, "demo")
    config = quick_config(**settings) if args.quick else DemoConfig(**settings)
    if args.steps:
        kept = tuple(s for s in config.grpo.checkpoint_steps if s < args.steps) + (args.steps,)
        config = replace(config, grpo=replace(config.grpo, steps=args.steps, checkpoint_steps=kept))
    if args.if_missing and _demo_present(config.out, config.analyze, config.cache, [RUN, substituted_run(config)]):
        print(f"demo already built: {config.out} (cache {config.cache}); run without --if-missing to rebuild")
        return 0
    progress, reporter = _progress()
    report = run_demo(config, progress)
    reporter.flush()
    print(f"CPU kernels: {pins}")
    print(f"base test accuracy {report['base_accuracy']:.3f}")
    for run, rows in report["runs"].items():
        curve = ", ".join(f"{r['step']}: {r['eval_accuracy']:.3f}/{r['reward']:.2f}" for r in rows if r["step"])
        print(f"{run} (step: test accuracy/reward) {curve}")
    gains = ", ".join(f"{r['step']}: {r['rank1_accuracy']:.3f} of {r['full_accuracy']:.3f}" for r in report["rank1"])
    print(f"rank-1 substitution of {config.out / 'runs'}/demo-grpo (step: rank-1 of full) {gains}")
    where = f"cache {config.cache} (runs demo-grpo, {substituted_run(config)})" if config.analyze else "not analysed"
    print(f"demo built in {report['timings']['total_s']:.0f} s: {config.out}, {where}")
    return 0


def _settings(args: argparse.Namespace, default_out: str) -> dict:
    """The config fields both demos share, from the flags (unset flags keep each config's defaults)."""
    settings: dict = {"out": Path(args.out or default_out), "cache": cache_of(args).root}
    settings.update(threads=args.threads, analyze=not args.no_analyze)
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.substitute_every:
        settings["substitute_every"] = args.substitute_every
    return settings


def _pin_kernels() -> str:
    """Pin the CPU kernels before torch loads (`system.determinism`); a note when torch is loaded already."""
    from ..system.determinism import pin_cpu_kernels

    try:
        return ", ".join(f"{k}={v}" for k, v in pin_cpu_kernels().items())
    except RuntimeError:
        return "not pinned (torch was loaded before the command ran)"


def _cmd_seeds(args: argparse.Namespace, pins: str) -> int:
    """`rlvr demo --seeds LIST [--sweep K,...]`."""
    from ..demo.seeds import SeedsConfig, run_seeds
    from ..demo.seeds_tables import interval

    seeds, periods = _int_list(args.seeds, "--seeds"), tuple(_int_list(args.sweep, "--sweep"))
    if min(periods) < 1 or min(seeds) < 0:
        raise UsageError(
            "rlvr demo",
            "seeds >= 0 and periods >= 1",
            f"{args.seeds} / {args.sweep}",
            "e.g. --seeds 0-4 --sweep 10,25,50",
        )
    config = SeedsConfig(
        seeds=tuple(seeds),
        periods=periods,
        out=Path(args.out or "demo-seeds"),
        cache=cache_of(args).root,
        threads=args.threads,
        quick=args.quick,
    )
    progress, reporter = _progress()
    report = run_seeds(config, progress)
    reporter.flush()
    summary = report["summary"]
    print(f"CPU kernels: {pins}")
    base = summary["base_accuracy"]
    print(f"{summary['n_seeds']} seeds in {report['seconds']:.0f} s; base test accuracy {interval(base)}")
    for step, row in summary["per_step"].items():
        print(
            f"step {step}: test {interval(row['test_accuracy'])}, reward {interval(row['reward'])}, rank-1 recovery "
            f"{interval(row['rank1_recovery'])} ({row['seeds_with_real_gain']} seeds with a real gain), u1 alignment "
            f"{interval(row['alignment'])}"
        )
    for k, row in summary["decoupling"].items():
        print(
            f"k={k}: reward gain kept {interval(row['reward_share'])}, test gain kept {interval(row['test_share'])}: "
            + row["verdict"]
        )
    print(f"every number: {config.out / 'seeds_report.json'}")
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    """`0-4` or `0,3,7` (or both: `0-2,5`) as a list of integers."""
    values: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            values += list(range(int(low), int(high) + 1)) if high else [int(low)]
    except ValueError:
        raise UsageError(flag, "integers, ranges like 0-4, separated by commas", repr(text), "e.g. 0-4") from None
    if not values or len(set(values)) != len(values):
        raise UsageError(flag, "at least one value, none twice", repr(text), "e.g. 0-4")
    return values


def _cmd_real(args: argparse.Namespace) -> int:
    """`rlvr demo --model smollm2`."""
    from ..demo.real import RUN, RealDemoConfig, real_quick_config, run_real_demo, twin_run

    settings = _settings(args, "demo-smollm2")
    config = real_quick_config(**settings) if args.quick else RealDemoConfig(**settings)
    if args.steps:
        config = replace(config, train=replace(config.train, steps=args.steps))
    if args.if_missing and _demo_present(config.out, config.analyze, config.cache, [RUN, twin_run(config)]):
        print(f"demo already built: {config.out} (cache {config.cache}); run without --if-missing to rebuild")
        return 0
    progress, reporter = _progress()
    report = run_real_demo(config, progress)
    reporter.flush()
    for run, rows in report["runs"].items():
        evals = ", ".join(f"{r['step']}: {r['eval_reward']:.3f}" for r in rows if "eval_reward" in r)
        print(f"{run}: final reward {rows[-1].get('reward', float('nan')):.3f}; eval_reward (step: value) {evals}")
    for row in report.get("comparisons", []):
        recovery = "n/a" if row["recovery"] is None else f"{row['recovery']:.2f}"
        print(
            f"step {row['step']} rank {row['rank']} {row['mode']}: base {row['acc_base']:.3f}, full "
            f"{row['acc_full']:.3f}, rank-{row['rank']} {row['acc_rank']:.3f}, recovery {recovery}"
            + (f" ({row['recovery_note']})" if row["recovery_note"] else "")
        )
    verdict = report.get("summary", {}).get("decoupling", {}).get("verdict")
    if verdict:
        print(f"decoupling under periodic rank-1 substitution: {verdict}")
    where = f"cache {config.cache} (runs {RUN}, {twin_run(config)})" if config.analyze else "not analysed"
    print(f"demo built in {report['timings']['total_s']:.0f} s: {config.out}, {where}")
    return 0


def _progress():
    """A progress function printing to stderr and reporting to the job queue (fraction and ETA)."""
    from ..cache.progress import Reporter

    start = time.perf_counter()
    reporter = Reporter()

    def progress(message: str, fraction: float | None = None) -> None:
        elapsed = time.perf_counter() - start
        print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)
        eta = "" if not fraction or fraction >= 1 else f" (about {_duration(elapsed * (1 - fraction) / fraction)} left)"
        reporter(fraction, message + eta)

    return progress, reporter


def _demo_present(out: Path, analyze: bool, cache: Path, runs: list[str]) -> bool:
    if not (out / "demo_report.json").is_file():
        return False
    return not analyze or set(runs) <= set(Cache(cache).queries().runs())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
