"""`rlvr substitute`, `rlvr evaluate` and `rlvr compare`: rank-k checkpoints, their evaluation, recovery.

rlvr substitute CKPT --base BASE [--rank 1] [--mode truncated|norm-matched] [--alpha 1] [--keep base|step]
                [--modules REGEX] [--cache DIR] --out DIR
rlvr evaluate MODEL_DIR --dataset NAME_OR_JSONL [--data-dir DIR] [--limit N] [--n 1] [--temperature 0]
              [--top-p 1] [--max-new-tokens 1024] [--batch-size B] [--device auto] [--cache DIR]
              [--run NAME] [--step N] [--variant base|full|rank-K]
rlvr compare RUN_DIR --base BASE [--steps 100,200] [--ranks 1,4] [--mode ...] --dataset NAME[,NAME]
             (the sampling flags of evaluate)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from .common import ProgressBar, add_cache_flags, add_config_flag, cache_of, model_dir, step_number

MODES = ("truncated", "norm-matched")
"""`--mode`'s values, listed in its help: `math.rank_k.MODES` (not imported: building the parser loads no torch;
the substitution refuses any other with key, expected, found and fix)."""
KEEPS = ("base", "step")
"""`--keep`'s values, listed in its help: where the tensors outside the rank-k substitution come from."""


def register(sub) -> dict[str, argparse.ArgumentParser]:
    s = sub.add_parser("substitute", help="write a checkpoint with every linear weight = W_base + rank-k(dW)")
    s.add_argument("checkpoint", help="the step checkpoint folder")
    s.add_argument("--base", required=True, help="the base model folder")
    _variant_flags(s)
    s.add_argument("--cache", help="reuse triplets cached by `rlvr analyze` for this exact base and step")
    add_config_flag(s)
    s.add_argument(
        "--out", required=True, help="the output folder: new, empty, or one rlvr substitute wrote (then replaced)"
    )
    s.set_defaults(func=_cmd_substitute)

    e = sub.add_parser("evaluate", help="generate on an evaluation set, grade and store the accuracy")
    e.add_argument("model_dir", help="a Hugging Face model folder")
    e.add_argument("--dataset", required=True, help="arithmetic (built in), a name in --data-dir, or a .jsonl file")
    _sampling_flags(e)
    e.add_argument("--run", help="the run it belongs to (default: from the folder)")
    e.add_argument("--step", type=step_number, help="its step (default: from the folder name)")
    e.add_argument("--variant", help="base, full or rank-K (default: from a substituted folder's recipe, else full)")
    e.set_defaults(func=_cmd_evaluate)

    c = sub.add_parser("compare", help="evaluate base, full and rank-k variants of a run's steps; store the recovery")
    c.add_argument("run_dir", help="the run folder")
    c.add_argument("--base", required=True, help="the base model folder")
    c.add_argument("--steps", help="steps, comma-separated (default: all)")
    c.add_argument("--ranks", default="1", help="ranks, comma-separated (default 1)")
    _variant_flags(c, rank=False)
    c.add_argument("--dataset", required=True, help="one or more sets, comma-separated (e.g. math500,gpqa_diamond)")
    c.add_argument("--run", help="the run's name in the cache (default: the run folder's name)")
    c.add_argument(
        "--predicted",
        action="append",
        default=[],
        metavar="DIR",
        help="also evaluate a checkpoint `rlvr predict` wrote, beside full at its step (repeatable)",
    )
    _sampling_flags(c)
    c.set_defaults(func=_cmd_compare)
    return {"substitute": s, "evaluate": e, "compare": c}


def _variant_flags(p, rank: bool = True) -> None:
    if rank:
        p.add_argument("--rank", type=int, default=1, help="singular directions of each update kept (default 1)")
    p.add_argument(
        "--mode", default="truncated", metavar="|".join(MODES), help="truncated (default) or norm-matched (AlphaRL)"
    )
    p.add_argument("--alpha", type=float, default=1.0, help="scale of the rank-k term (default 1)")
    p.add_argument(
        "--keep", default="base", metavar="|".join(KEEPS), help="other tensors from the base (default) or the step"
    )
    p.add_argument("--modules", help="regex on tensor names (default: every linear weight of the blocks)")


def _sampling_flags(p) -> None:
    p.add_argument("--data-dir", help="folder of <name>.jsonl sets (default: $RLVR_DATA)")
    p.add_argument("--limit", type=int, help="only the first N problems")
    p.add_argument("--n", type=int, default=1, help="samples per problem (default 1)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling's top-p (default 1)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="completion budget per problem (default 1024)")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generate() call (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    add_cache_flags(p)


def _sampling(args):
    from ..pipelines.generation import Sampling

    if args.n < 1 or args.batch_size < 1 or args.max_new_tokens < 1 or (args.limit is not None and args.limit < 1):
        raise UsageError(
            "sampling flags",
            "--n, --batch-size, --max-new-tokens and --limit of at least 1",
            f"{args.n}, {args.batch_size}, {args.max_new_tokens}, {args.limit}",
            "pass positive numbers",
        )
    if args.n > 1 and args.temperature == 0:
        raise UsageError(
            "--n",
            "one sample with greedy decoding",
            f"--n {args.n} at --temperature 0",
            "pass --temperature 0.6 (or another > 0) for several samples",
        )
    return Sampling(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def _device(name: str) -> str:
    from ..system.devices import resolve_device

    return str(resolve_device(name))


def _cmd_substitute(args: argparse.Namespace) -> int:
    from ..pipelines.substitute import SubstituteConfig, write_substituted

    cache = Path(args.cache) if args.cache else None
    recipe = write_substituted(
        SubstituteConfig(
            step_dir=model_dir(args, args.checkpoint),
            base_dir=model_dir(args, args.base),
            out=Path(args.out),
            rank=args.rank,
            mode=args.mode,
            alpha=args.alpha,
            keep=args.keep,
            modules=args.modules,
            cache=cache,
        )
    )
    t = recipe["triplets"]
    print(
        f"{args.out}: {len(recipe['substituted'])} weights = W_base + rank-{args.rank}(dW) ({args.mode}, "
        f"alpha {args.alpha:g}; {t['from_cache']} from cached triplets, {t['computed']} decomposed); other "
        f"tensors from the {args.keep}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..pipelines.evaluate import EvalRequest, evaluate
    from ..readers.datasets import load_dataset

    dataset = load_dataset(args.dataset, args.data_dir, args.limit)
    request = EvalRequest(
        model_dir=model_dir(args, args.model_dir),
        dataset=dataset,
        sampling=_sampling(args),
        cache=cache_of(args).root,
        device=_device(args.device),
        run=args.run,
        step=args.step,
        variant=args.variant,
    )
    bar = ProgressBar("problem")
    try:
        row = evaluate(request, lambda done, total, tokens_per_s: bar(done, total, f"{tokens_per_s:.0f} tok/s"))
    finally:
        bar.close()
    print(
        f"{args.model_dir} on {dataset.name} ({row['n_problems']} problems, n={row['n']}, T={row['temperature']:g}):"
        f" accuracy {row['accuracy']:.4f}, pass@{row['k']} {row['pass_at_k']:.4f}; {row['tokens_per_s']:.0f} "
        f"tokens/s on {row['device']} ({row['backend']}); eval {row['eval_id']} in {request.cache}"
    )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..cache.progress import Reporter
    from ..pipelines.compare import CompareConfig, compare
    from ..readers.datasets import load_dataset
    from ..readers.layout import parse_steps

    try:
        ranks = [int(r) for r in args.ranks.split(",")]
    except ValueError:
        raise UsageError("--ranks", "integers, comma-separated (1,4)", repr(args.ranks), "pass --ranks 1,4") from None
    datasets = [load_dataset(name, args.data_dir, args.limit) for name in args.dataset.split(",")]
    config = CompareConfig(
        run_dir=Path(args.run_dir),
        base_dir=model_dir(args, args.base),
        datasets=datasets,
        steps=parse_steps(args.steps) if args.steps else None,
        ranks=ranks,
        mode=args.mode,
        alpha=args.alpha,
        keep=args.keep,
        modules=args.modules,
        sampling=_sampling(args),
        cache=cache_of(args).root,
        device=_device(args.device),
        run=args.run,
        predicted=[Path(folder) for folder in args.predicted],
    )
    reporter = Reporter()
    said = [""]

    def progress(message: str | None, fraction: float | None = None) -> None:
        if message:  # an evaluation finished: logged; within one: only the fraction moves
            said[0] = message
            print(message, file=sys.stderr, flush=True)
        reporter(fraction, said[0] or "evaluating")

    rows = compare(config, progress)
    reporter.flush()
    for r in rows:
        rec = (
            f"n/a ({r['recovery_note']})"
            if r["recovery"] is None
            else (f"{r['recovery']:.2f} (95% interval {r['recovery_low']:.2f} to {r['recovery_high']:.2f})")
        )
        print(
            f"{r['run']} step {r['step']} rank-{r['rank']} {r['mode']} on {r['dataset']}: base {r['acc_base']:.3f}, "
            f"full {r['acc_full']:.3f}, rank-{r['rank']} {r['acc_rank']:.3f}, recovery {rec}"
        )
    return 0
