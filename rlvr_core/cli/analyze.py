"""`rlvr analyze`, `rlvr logs` and `rlvr runs`: checkpoints and training logs into the cache, and what it holds.

rlvr analyze RUN_DIR --base BASE_DIR [--run NAME] [--steps 100,200] [--modules REGEX] [--topk 8]
rlvr analyze --pair MODEL --base BASE [--run NAME] [--step 1]    (a published base -> RL pair; folders or Hub ids)
             [--device auto|cpu|cuda] [--cache DIR] [--checkpoint STEP=PATH ...] [--include-embeddings]
             [--no-base] [--force] [--triplets auto|eigh|lowrank]
rlvr logs PATH --run NAME [--reward KEY] [--test KEY] [--cache DIR]
rlvr runs [--cache DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..cache import queue as jobs
from ..errors import UsageError
from .common import ProgressBar, add_cache_flags, cache_of, model_dir, step_number


def register(sub) -> dict[str, argparse.ArgumentParser]:
    analyze = sub.add_parser("analyze", help="compute per-layer spectra of a run's checkpoints into the cache")
    analyze.add_argument("run_dir", nargs="?", help="the run folder (checkpoint-N/, global_step_N/, step_N/ ...)")
    analyze.add_argument("--base", required=True, help="the base model folder, or a Hub id org/name[@rev]")
    analyze.add_argument(
        "--pair", metavar="MODEL", help="analyse one RL model (folder or Hub id) against --base, as a one-step run"
    )
    analyze.add_argument("--step", type=step_number, default=1, help="the step a --pair model is stored as (default 1)")
    analyze.add_argument("--run", help="the run's name in the cache (default: the run folder's name)")
    analyze.add_argument("--steps", help="only these steps, comma-separated (e.g. 100,200)")
    analyze.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="STEP=PATH",
        help="name a checkpoint folder and its step explicitly (repeatable)",
    )
    analyze.add_argument("--modules", help="regex on tensor names; only matching tensors are analysed")
    analyze.add_argument("--topk", type=int, default=8, help="top singular triplets of dW to keep (default 8)")
    analyze.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    analyze.add_argument(
        "--triplets",
        default="auto",
        choices=["auto", "eigh", "lowrank"],
        help="how dW's top-k triplets are computed: eigh (exact, from the Gram matrix), "
        "lowrank (randomized, checked against the exact spectrum, falls back to eigh), "
        "auto (default: eigh; see docs/explanations/computed.md)",
    )
    analyze.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "threads", "processes", "batched"],
        help="how matrices are spread: threads, processes (CPU worker processes that also fit), batched "
        "(same-shape stacks, for GPUs), auto (default: processes on CPU for large steps, else threads)",
    )
    analyze.add_argument(
        "--workers", type=int, help="tensors computed at once (default: one per CPU core on CPU, 3 on CUDA)"
    )
    add_cache_flags(analyze)
    analyze.add_argument("--include-embeddings", action="store_true", help="also analyse embeddings and lm_head")
    analyze.add_argument("--no-base", action="store_true", help="do not analyse the base model as step 0")
    analyze.add_argument("--no-fits", action="store_true", help="skip the power-law fits and ESD histograms")
    analyze.add_argument(
        "--no-geometry", action="store_true", help="skip the update's geometry against the base (update_geometry)"
    )
    analyze.add_argument(
        "--no-alignment", action="store_true", help="skip the run-level alignment and rank-1 dynamics across steps"
    )
    analyze.add_argument("--force", action="store_true", help="recompute steps that are already cached")
    analyze.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="record tensors holding NaN/Inf as not analysed instead of stopping",
    )
    analyze.add_argument("--quiet", action="store_true", help="no progress bar")
    analyze.set_defaults(func=_cmd_analyze)

    logs = sub.add_parser(
        "logs", help="ingest a training log (verl JSONL, TRL trainer_state.json, TensorBoard, CSV/JSONL) into the cache"
    )
    logs.add_argument("path", help="the log file, or a folder holding one")
    logs.add_argument("--run", required=True, help="the run's name in the cache")
    per_framework = "(default: per framework, see docs/questions/reward-overfitting.md)"
    logs.add_argument("--reward", help=f"the train-reward metric {per_framework}")
    logs.add_argument("--test", help=f"the test-accuracy metric {per_framework}")
    add_cache_flags(logs)
    logs.set_defaults(func=_cmd_logs)

    runs = sub.add_parser("runs", help="list cached runs and their steps")
    add_cache_flags(runs)
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(func=_cmd_runs)
    return {"analyze": analyze, "logs": logs, "runs": runs}


def _cmd_analyze(args: argparse.Namespace) -> int:
    from ..cache.progress import Reporter
    from ..pipelines.analyze import AnalyzeConfig, analyze_run
    from ..readers.layout import discover_steps, parse_explicit, parse_steps

    steps = parse_steps(args.steps) if args.steps else None
    base = model_dir(args, args.base)
    if args.pair:  # a published base -> RL pair: a one-step run
        from ..readers.hub import is_hub_id
        from ..readers.layout import StepCheckpoint

        if args.step < 1:
            raise UsageError("--step", "a step of 1 or more (0 is the base)", str(args.step), "pass --step 1")
        if args.run_dir or args.checkpoint:
            given = f"RUN_DIR {args.run_dir}" if args.run_dir else "--checkpoint"
            raise UsageError(
                f"rlvr analyze --pair {args.pair}", "one model pair (--pair MODEL --base BASE) and nothing else",
                f"{given} as well, which --pair would ignore",
                "drop --pair to analyse the run folder, or drop the run folder / --checkpoint",
            )  # fmt: skip
        checkpoints = [StepCheckpoint(args.step, model_dir(args, args.pair), "pair")]
        default = args.pair.rstrip("/").split("@")[0].split("/")[-1] if is_hub_id(args.pair) else None
        args.run = args.run or default or Path(args.pair).resolve().name
    elif args.checkpoint:
        checkpoints = parse_explicit(args.checkpoint)
        if steps is not None:
            checkpoints = [c for c in checkpoints if c.step in steps]
    elif args.run_dir:
        checkpoints = discover_steps(args.run_dir, steps)
    else:
        raise UsageError(
            "rlvr analyze",
            "RUN_DIR or --checkpoint STEP=PATH",
            "neither",
            "pass the run folder, e.g. rlvr analyze runs/grpo --base models/base",
        )
    name = args.run or Path(args.run_dir or Path(checkpoints[0].path).parent).resolve().name
    cache = cache_of(args)
    config = AnalyzeConfig(
        owner=os.environ.get(jobs.USER_ENV) or None,
        sources=_sources(args),
        shared=bool(os.environ.get(jobs.JOB_ENV)),
        base=base,
        checkpoints=checkpoints,
        run=name,
        cache=cache.root,
        modules=args.modules,
        topk=args.topk,
        device=args.device,
        include_embeddings=args.include_embeddings,
        include_base=not args.no_base,
        force=args.force,
        triplet_method=args.triplets,
        engine=args.engine,
        workers=args.workers,
        fits=not args.no_fits,
        alignment=not args.no_alignment,
        geometry=not args.no_geometry,
        allow_nonfinite=args.allow_nonfinite,
    )
    bar, reporter = (None if args.quiet else ProgressBar("tensor")), Reporter()

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
    print(
        f"run '{summary.run}': analysed steps {summary.analyzed or 'none'}, skipped (cached, unchanged) "
        f"{summary.skipped or 'none'}; {summary.tensors} tensors in {summary.seconds:.1f} s "
        f"({per_step:.1f} s per checkpoint) on {summary.device} ({summary.engine}); "
        f"alignment over {summary.alignment_tensors} tensors x {summary.alignment_steps} steps; cache {cache.root}"
    )
    for line in summary.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from ..pipelines.logs import ingest_log
    from ..readers.log_metrics import log_warnings

    cache = cache_of(args)
    log, summary = ingest_log(cache, args.run, args.path, args.reward, args.test)
    files = len(log.sources)
    source = f"{log.path} ({log.format}" + (f", {files} event files merged by step)" if files > 1 else ")")
    shared = summary["n_shared_steps"]
    test = (
        "no test metric"
        if summary["test_metric"] is None
        else f"test '{summary['test_metric']}' peaks at step {summary['test_peak_step']}; "
        + (
            f"Spearman rho {summary['spearman']:.3f} over {shared} shared steps"
            if shared >= 3 and summary["spearman"] == summary["spearman"]
            else f"Spearman rho undefined over {shared} shared steps (a constant series)"
            if shared >= 3
            else f"no Spearman rho: reward and test share {shared} step(s)"
        )
    )
    print(
        f"run '{args.run}': {len(log.records)} values of {len(log.names())} metrics from {source}; reward "
        f"'{summary['reward_metric']}' peaks at step {summary['reward_peak_step']}, {test}; cache {cache.root}"
    )
    if summary["test_metric_note"]:
        print(f"warning: {log.path}: {summary['test_metric_note']}", file=sys.stderr)
    for line in log_warnings(log, summary):
        print(f"warning: {log.path}: {line}", file=sys.stderr)
    return 0


def _sources(args: argparse.Namespace) -> tuple[str, ...]:
    """What the run is analysed from, as recorded with it: the run folder, or the --pair model (a Hub id
    as given); () for --checkpoint (each checkpoint's run folder, found by the pipeline)."""
    from ..readers.hub import is_hub_id

    if args.pair:
        return (args.pair if is_hub_id(args.pair) else str(Path(args.pair).resolve()),)
    return (str(Path(args.run_dir).resolve()),) if args.run_dir and not args.checkpoint else ()


def _cmd_runs(args: argparse.Namespace) -> int:
    import pandas as pd

    cache = cache_of(args)
    if not cache.root.is_dir():
        raise UsageError(
            str(cache.root),
            "a cache folder",
            "no such folder",
            "check --cache (or the config's `cache`); `rlvr analyze` or `rlvr demo` creates one",
        )
    queries = cache.queries()
    rows, broken, monitor = queries.run_listing(), queries.broken(), queries.monitor_latest()
    read_in = _precision(queries.checkpoints())
    problems: dict[str, list[str]] = {}
    for b in broken.itertuples():
        what = f"step {int(b.step)}" if pd.notna(b.step) else (f"evaluation {b.eval_id}" if b.eval_id else "run file")
        problems.setdefault(b.run or "(evaluations)", []).append(f"{what}: {b.path} unreadable")
    if args.json:
        known = {r[0] for r in rows}
        entries = [
            {
                "run": r[0],
                "steps": r[1],
                "last_analyzed": None if r[3] is None else str(r[3]),
                "logged_values": r[4],
                "evaluations": r[5],
                "broken": problems.get(r[0], []),
                "monitor": _monitor_entry(monitor.get(r[0])),
                **_owner_entry(cache.run_dir(r[0])),
                "precision": {str(step): text for step, text in read_in.get(r[0], {}).items()},
            }
            for r in rows
        ]
        entries += [
            {"run": run, "steps": [], "last_analyzed": None, "logged_values": 0, "evaluations": 0, "broken": found}
            for run, found in problems.items()
            if run not in known
        ]
        print(json.dumps(entries))
        return 0
    if not rows and not problems:
        print(f"no runs cached in {cache.root}: run `rlvr analyze RUN_DIR --base BASE_DIR`")
        return 0
    for run, steps, _, last, logged, evaluations in rows:
        trained = [s for s in steps if s != 0]
        base = " + the base (step 0)" if 0 in steps else ""
        analysed = (
            f"{len(trained)} step(s){base}\tsteps {','.join(map(str, steps))}\tlast analysed {last:%Y-%m-%d %H:%M}"
            if steps
            else "not analysed"
        )
        extra = "".join(
            f"\t{count} {what}" for count, what in ((logged, "logged values"), (evaluations, "evaluations")) if count
        )
        kinds = sorted(set(read_in.get(run, {}).values()))
        weights = f"\tweights {', '.join(kinds)}" if kinds else ""
        print(f"{run}\t{analysed}{extra}{weights}{_monitor_text(monitor.get(run))}")
    for run, found in problems.items():
        print(
            f"{run}\tBROKEN\t{'; '.join(found)}: run `rlvr analyze` on it again to repair (or delete the listed files)"
        )
    return 0


def _precision(frame) -> dict[str, dict[int, str]]:
    """run -> step -> "F32 (fsdp-shards)": the precision each analysed checkpoint was read in."""
    found: dict[str, dict[int, str]] = {}
    for row in frame.itertuples():
        if isinstance(row.weights_dtype, str):
            found.setdefault(row.run, {})[int(row.step)] = f"{row.weights_dtype} ({row.weights_source})"
    return found


def _owner_entry(run_dir: Path) -> dict:
    """The run's owner and sources for `rlvr runs --json` (None: cached before runs had records)."""
    from ..cache.owners import read_record

    record = read_record(run_dir)
    return {"owner": record.owner if record else None, "sources": list(record.sources) if record else []}


def _monitor_entry(verdict: tuple[str, int | None, int] | None) -> dict | None:
    """The monitor's last verdict for `rlvr runs --json` (None: no test metric logged)."""
    if verdict is None:
        return None
    return {"status": verdict[0], "since": verdict[1], "step": verdict[2]}


def _monitor_text(verdict: tuple[str, int | None, int] | None) -> str:
    """The monitor column of `rlvr runs`: its last verdict, and since when a flag stands."""
    if verdict is None:
        return ""
    status, since, step = verdict
    return f"\tmonitor at step {step}: {status}" + (f" (since step {since})" if since is not None else "")
