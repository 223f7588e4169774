"""The `rlvr` command line (also `python -m rlvr_core`).

    rlvr analyze RUN_DIR --base BASE_DIR [--run NAME] [--steps 100,200] [--modules REGEX] [--topk 8]
                 [--device auto|cpu|cuda] [--cache DIR] [--checkpoint STEP=PATH ...] [--include-embeddings]
                 [--no-base] [--force] [--triplets auto|eigh|lowrank]
    rlvr logs PATH --run NAME [--reward KEY] [--test KEY] [--cache DIR]
    rlvr demo [--out DIR] [--cache DIR] [--quick] [--seed N] [--threads N] [--substitute-every K] [--no-analyze]
              [--if-missing]
    rlvr runs [--cache DIR] [--json]
    rlvr substitute | evaluate | compare ...   (see cli_eval)
    rlvr submit | jobs | cancel | worker ...   (see cli_jobs)
    rlvr serve [--port 8501] [--address A] [--workers N|auto] [--cache DIR] [--config FILE]   (see serve)

Every user error is an `RlvrError`: printed as one line `error: ...` on stderr, exit status 2.
Heavy imports (torch) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from . import store
from .errors import RlvrError, UsageError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if os.environ.get("RLVR_JOB_ID"):  # running as a queued job: SIGTERM (cancel) unwinds like Ctrl-C
        from .cli_jobs import interrupt

        signal.signal(signal.SIGTERM, interrupt)
    try:
        return args.func(args)
    except RlvrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished steps are cached, the step in progress was not written",
              file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr", description="RLVR Lens: what RL did to the weights.")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze = sub.add_parser("analyze", help="compute per-layer spectra of a run's checkpoints into the cache")
    analyze.add_argument("run_dir", nargs="?", help="the run folder (checkpoint-N/, global_step_N/, step_N/ ...)")
    analyze.add_argument("--base", required=True, help="the base model folder")
    analyze.add_argument("--run", help="the run's name in the cache (default: the run folder's name)")
    analyze.add_argument("--steps", help="only these steps, comma-separated (e.g. 100,200)")
    analyze.add_argument("--checkpoint", action="append", default=[], metavar="STEP=PATH",
                         help="name a checkpoint folder and its step explicitly (repeatable)")
    analyze.add_argument("--modules", help="regex on tensor names; only matching tensors are analysed")
    analyze.add_argument("--topk", type=int, default=8, help="top singular triplets of dW to keep (default 8)")
    analyze.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    analyze.add_argument("--triplets", default="auto", choices=["auto", "eigh", "lowrank"],
                         help="how dW's top-k triplets are computed: eigh (exact, from the Gram matrix), "
                              "lowrank (randomized, checked against the exact spectrum, falls back to eigh), "
                              "auto (default: see docs/spectral engine)")
    analyze.add_argument("--workers", type=int, help="tensors computed at once (default: one per CPU core "
                         "on CPU, 3 on CUDA)")
    analyze.add_argument("--cache", help=f"cache folder (default: ${store.CACHE_ENV} or ./{store.DEFAULT_CACHE})")
    analyze.add_argument("--include-embeddings", action="store_true", help="also analyse embeddings and lm_head")
    analyze.add_argument("--no-base", action="store_true", help="do not analyse the base model as step 0")
    analyze.add_argument("--no-fits", action="store_true", help="skip the power-law fits and ESD histograms")
    analyze.add_argument("--no-alignment", action="store_true",
                         help="skip the run-level alignment and rank-1 dynamics across steps")
    analyze.add_argument("--force", action="store_true", help="recompute steps that are already cached")
    analyze.add_argument("--quiet", action="store_true", help="no progress bar")
    analyze.set_defaults(func=_cmd_analyze)
    logs = sub.add_parser("logs", help="ingest a training log (verl JSONL, TRL trainer_state.json, "
                          "TensorBoard, CSV/JSONL) into the cache")
    logs.add_argument("path", help="the log file, or a folder holding one")
    logs.add_argument("--run", required=True, help="the run's name in the cache")
    logs.add_argument("--reward", help="the train-reward metric (default: per framework, see the README)")
    logs.add_argument("--test", help="the test-accuracy metric (default: per framework, see the README)")
    logs.add_argument("--cache", help=f"cache folder (default: ${store.CACHE_ENV} or ./{store.DEFAULT_CACHE})")
    logs.set_defaults(func=_cmd_logs)
    demo = sub.add_parser("demo", help="train the built-in demo (a tiny real GRPO run on CPU) and analyse it")
    demo.add_argument("--out", default="demo", help="where the base, the runs and the report go (default ./demo)")
    demo.add_argument("--cache", help=f"cache folder (default: ${store.CACHE_ENV} or ./{store.DEFAULT_CACHE})")
    demo.add_argument("--quick", action="store_true", help="the small version for tests and CI (under a minute)")
    demo.add_argument("--seed", type=int, help="seed of everything (default 0)")
    demo.add_argument("--threads", type=int, default=2, help="torch threads (default 2; fixed for reproducibility)")
    demo.add_argument("--substitute-every", type=int, help="k of the periodic rank-1 run (default 25; quick 10)")
    demo.add_argument("--no-analyze", action="store_true", help="train only; do not analyse into the cache")
    demo.add_argument("--if-missing", action="store_true",
                      help="do nothing when OUT holds a finished demo and the cache lists its runs")
    demo.set_defaults(func=_cmd_demo)

    from . import cli_eval, cli_jobs, serve

    parsers = {"analyze": analyze, "demo": demo, "logs": logs, **cli_eval.add_parsers(sub)}
    cli_jobs.add_parsers(sub, parsers)
    serve.add_parser(sub)

    runs = sub.add_parser("runs", help="list cached runs and their steps")
    runs.add_argument("--cache", help=f"cache folder (default: ${store.CACHE_ENV} or ./{store.DEFAULT_CACHE})")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(func=_cmd_runs)
    return parser


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis import AnalyzeConfig, analyze_run
    from .layout import discover_steps, parse_explicit, parse_steps

    steps = parse_steps(args.steps) if args.steps else None
    if args.checkpoint:
        checkpoints = parse_explicit(args.checkpoint)
        if steps is not None:
            checkpoints = [c for c in checkpoints if c.step in steps]
    elif args.run_dir:
        checkpoints = discover_steps(args.run_dir, steps)
    else:
        raise UsageError("rlvr analyze", "RUN_DIR or --checkpoint STEP=PATH", "neither",
                         "pass the run folder, e.g. rlvr analyze runs/grpo --base models/base")
    name = args.run or Path(args.run_dir or Path(checkpoints[0].path).parent).resolve().name
    cache = store.resolve_cache(args.cache)
    config = AnalyzeConfig(base=Path(args.base), checkpoints=checkpoints, run=name, cache=cache,
                           modules=args.modules, topk=args.topk, device=args.device,
                           include_embeddings=args.include_embeddings, include_base=not args.no_base,
                           force=args.force, triplet_method=args.triplets,
                           workers=args.workers, fits=not args.no_fits, alignment=not args.no_alignment)
    from .jobs import Reporter

    bar, reporter = (None if args.quiet else _ProgressBar()), Reporter()

    def progress(done: int, total: int, message: str) -> None:
        if bar is not None:
            bar(done, total, message)
        reporter(done / max(total, 1), message)
    try:
        summary = analyze_run(config, progress)
    finally:
        reporter.flush()
        if bar is not None:
            bar.close()
    per_step = sum(summary.seconds_per_step.values()) / max(len(summary.seconds_per_step), 1)
    print(f"run '{summary.run}': analysed steps {summary.analyzed or 'none'}, skipped (cached, unchanged) "
          f"{summary.skipped or 'none'}; {summary.tensors} tensors in {summary.seconds:.1f} s "
          f"({per_step:.1f} s per checkpoint) on {summary.device}; alignment over {summary.alignment_tensors} "
          f"tensors x {summary.alignment_steps} steps; cache {cache}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from .ingest import ingest_log

    cache = store.resolve_cache(args.cache)
    log, summary = ingest_log(cache, args.run, args.path, args.reward, args.test)
    rho = summary["spearman"]
    print(f"run '{args.run}': {len(log.records)} values of {len(log.names())} metrics from {log.path} "
          f"({log.format}); reward '{summary['reward_metric']}' peaks at step {summary['reward_peak_step']}, "
          f"test '{summary['test_metric']}' at step {summary['test_peak_step']}; Spearman rho {rho:.3f} over "
          f"{summary['n_shared_steps']} shared steps; cache {cache}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, quick_config, run_demo, substituted_run

    if args.threads < 1 or (args.substitute_every is not None and args.substitute_every < 1):
        raise UsageError("rlvr demo", "--threads and --substitute-every of at least 1",
                         f"{args.threads} and {args.substitute_every}", "pass positive numbers")
    settings = {"out": Path(args.out), "cache": store.resolve_cache(args.cache), "threads": args.threads,
                "analyze": not args.no_analyze}
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.substitute_every:
        settings["substitute_every"] = args.substitute_every
    config = quick_config(**settings) if args.quick else DemoConfig(**settings)
    if args.if_missing and _demo_present(config):
        print(f"demo already built: {config.out} (cache {config.cache}); run without --if-missing to rebuild")
        return 0
    start = time.perf_counter()
    from .jobs import Reporter

    reporter = Reporter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)
        reporter(None, message)
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
    from .demo import RUN, substituted_run

    if not (config.out / "demo_report.json").is_file():
        return False
    cached = {row[0] for row in store.open_cache(config.cache).execute("SELECT DISTINCT run FROM checkpoints").fetchall()}
    return not config.analyze or {RUN, substituted_run(config)} <= cached


def _cmd_runs(args: argparse.Namespace) -> int:
    con = store.open_cache(args.cache)
    rows = con.execute(
        "SELECT run, list(step ORDER BY step) AS steps, count(*) AS n, max(analyzed_at) AS last "
        "FROM checkpoints GROUP BY run ORDER BY run").fetchall()
    if args.json:
        print(json.dumps([{"run": r[0], "steps": r[1], "last_analyzed": str(r[3])} for r in rows]))
        return 0
    if not rows:
        print(f"no runs cached in {store.resolve_cache(args.cache)}: run `rlvr analyze RUN_DIR --base BASE_DIR`")
        return 0
    for run, steps, n, last in rows:
        print(f"{run}\t{n} checkpoint(s)\tsteps {','.join(map(str, steps))}\tlast analysed {last:%Y-%m-%d %H:%M}")
    return 0


class _ProgressBar:
    """tqdm on stderr: tensors done of total, with an ETA."""

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, done: int, total: int, message: str) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, unit="tensor", file=sys.stderr, dynamic_ncols=True)
        self._bar.set_postfix_str(message[-60:], refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
