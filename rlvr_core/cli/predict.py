"""`rlvr predict` and `rlvr correlate`: beyond the paper, from an analysed run's cache.

rlvr predict RUN --from-step t --to-step T [--rank 1] [--base DIR] [--out DIR] [--modules REGEX] [--cache DIR]
    predict a later step from the early ones (`pipelines.predict`)
rlvr correlate RUN [--permutations 1999] [--top 10] [--cache DIR]
    which spectral metric tracks the held-out metric (`pipelines.correlate`)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_cache_flags, cache_of, step_number


def register(sub) -> dict[str, argparse.ArgumentParser]:
    p = sub.add_parser(
        "predict", help="extrapolate each weight's rank-k update from the steps <= t to step T; score and write it"
    )
    p.add_argument("run", help="the analysed run (rlvr runs lists them)")
    p.add_argument("--from-step", type=step_number, required=True, help="the last analysed step to use (t)")
    p.add_argument("--to-step", type=step_number, required=True, help="the step to predict (T > t; may be untrained)")
    p.add_argument("--rank", type=int, default=1, help="directions extrapolated per weight (default 1)")
    p.add_argument("--base", help="the base model folder (default: the one the analysis recorded)")
    p.add_argument("--out", help="write the predicted checkpoint here (new, empty, or one rlvr predict wrote)")
    p.add_argument("--modules", help="regex on tensor names: only matching weights are predicted")
    add_cache_flags(p)
    p.set_defaults(func=_cmd_predict)

    c = sub.add_parser("correlate", help="Spearman's rho over steps of each spectral metric with the held-out metric")
    c.add_argument("run", help="an analysed run with an ingested log")
    c.add_argument("--permutations", type=int, default=1999, help="random orders behind p above 8 steps (1999)")
    c.add_argument("--top", type=int, default=10, help="rows printed (default 10)")
    add_cache_flags(c)
    c.set_defaults(func=_cmd_correlate)
    return {"predict": p, "correlate": c}


def _cmd_correlate(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..pipelines.correlate import MATCHED, correlate_run

    cache = cache_of(args)
    if args.permutations < 99:
        raise UsageError("--permutations", "at least 99", str(args.permutations), "pass --permutations 1999")
    if correlate_run(cache, args.run, args.permutations) == 0:
        raise UsageError(
            f"run '{args.run}'", "analysed steps and an ingested held-out metric at some of them", "none of both",
            f"rlvr analyze ... --run {args.run}, then rlvr logs PATH --run {args.run} [--test KEY]",
        )  # fmt: skip
    rows = cache.queries().metric_correlations(args.run)
    print(f"run '{args.run}': {len(rows)} correlations with {rows['test_metric'].iloc[0]} (per module kind first; "
          "ranked by the step-to-step changes' BH-adjusted p)")  # fmt: skip
    within = rows[rows["level"] != MATCHED]
    for r in within.head(args.top).itertuples():
        where = r.module if r.level == "module" else r.tensor
        flag = f"\t[{r.flag}]" if isinstance(r.flag, str) else ""
        print(f"{r.metric}({r.target})\t{where}\trho of changes {r.spearman_change:+.2f}\tp adjusted "
              f"{r.p_adjusted:.3g}\trho of levels {r.spearman:+.2f}\t{r.n_steps} steps{flag}")  # fmt: skip
    across = rows[rows["level"] == MATCHED]
    if len(across):
        print("across the run's seeds at matched steps (rho of the ranks among runs within each step):")
    for r in across.head(args.top).itertuples():
        print(f"{r.metric}({r.target})\t{r.module}\trho {r.spearman:+.2f}\tp adjusted {r.p_adjusted:.3g}\t"
              f"{r.n_steps} (run, step) pairs")  # fmt: skip
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from ..pipelines.predict import PredictConfig, predict

    summary = predict(
        PredictConfig(
            run=args.run,
            from_step=args.from_step,
            to_step=args.to_step,
            rank=args.rank,
            cache=cache_of(args).root,
            base=Path(args.base) if args.base else None,
            out=Path(args.out) if args.out else None,
            modules=args.modules,
        )
    )
    cos, err = summary["median_cos_u1"], summary["median_fro_error"]
    scored = (
        f"; against the real step {args.to_step}: median |cos(u1(t), u1(T))| {cos:.3f}"
        + (f", median ||W_pred - W_T||_F / ||dW_T||_F {err:.3f}" if err is not None else " (its files are gone)")
        if cos is not None
        else f" (step {args.to_step} is not analysed: nothing to score against)"
    )
    print(
        f"run '{summary['run']}': {summary['tensors']} weights predicted at step {args.to_step} from steps "
        f"{summary['fitted_steps']} (rank {args.rank}){scored}; rows in the `predictions` view"
        + (f"; checkpoint written to {summary['out']}" if summary["out"] else "")
    )
    return 0
