"""`rlvr compare`: base, full and rank-k variants of a run's steps, evaluated on the same problems with
the same sampling, and the recovery of each variant:

    recovery = (acc_rank_k - acc_base) / (acc_full - acc_base)

reported only when the full model's gain over the base is larger than the noise of those problems (a
paired bootstrap over problems, `math.stats`), with its 95% interval; otherwise NULL with the reason in
`recovery_note`. Each row also holds the paired view, problem by problem: how many problems the rank-k
model solves that the full model (and the base) does not (`gained_vs_*`), how many it loses
(`lost_vs_*`), and McNemar's exact p of that split (`mcnemar_*_p`, `math.stats.mcnemar`).

The rank-k checkpoints are built once into the cache's variant folders (`Cache.variant_dir`; rebuilt when
the step or base changed); evaluations are cached
by content (`evaluate.eval_id`). The recovery rows go to the run-level `recovery` view (one row per step,
rank, mode and dataset): merged under the run's lock (`Cache.merge_run_rows`), so a rerun replaces its own
rows, keeps the others, and two comparisons of one run at once keep both their rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cache import Cache, check_run_name
from ..errors import UsageError
from ..math.stats import mcnemar, recovery_estimate
from ..readers.checkpoint import Checkpoint, check_same_model
from ..readers.datasets import EvalSet
from ..readers.layout import discover_steps, step_folders
from .evaluate import EvalRequest, evaluate
from .generation import Sampling
from .substitute import RECIPE_FILE, SubstituteConfig, write_substituted

RECOVERY_KEY = ("step", "rank", "mode", "dataset", "keep", "alpha", "modules")
"""The columns that identify a recovery row: a rerun replaces the rows with its own keys only."""


@dataclass(kw_only=True)
class CompareConfig:
    """What `rlvr compare` does. Fields mirror its flags."""

    run_dir: Path
    """The run folder whose checkpoints are compared."""
    base_dir: Path
    """The base model (the `base` variant, and dW = W_step - W_base)."""
    datasets: list[EvalSet]
    """The evaluation sets; each gives its own recovery rows."""
    steps: list[int] | None = None
    """Steps to compare (None: every checkpoint of the run)."""
    ranks: list[int] = field(default_factory=lambda: [1])
    """Substitution ranks: one rank-k variant per step and rank."""
    mode: str = "truncated"
    """`truncated` or `norm-matched` (see `math.rank_k`)."""
    alpha: float = 1.0
    """Scale of the rank-k term."""
    keep: str = "base"
    """Where the tensors that are not substituted come from: `base` or `step`."""
    modules: str | None = None
    """Regex on tensor names: only matching linear weights are substituted."""
    sampling: Sampling = field(default_factory=Sampling)
    """Sampling of every evaluation (the same for all variants)."""
    cache: Path = Path("cache")
    """The cache: evaluations, variants and recovery rows."""
    device: str = "cpu"
    """A resolved device: `cpu`, `cuda` or `cuda:N`."""
    run: str | None = None
    """The run's name in the cache (default: the run folder's name)."""
    predicted: list[Path] = field(default_factory=list)
    """Checkpoints written by `rlvr predict` (of this run): each is evaluated beside base and full at its
    `to_step` (variant `predicted-from-<t>`), with its recovery (mode `predicted-from-<t>`)."""


def compare(config: CompareConfig, progress: Callable[..., None] = lambda m, f=None: None) -> list[dict]:
    """Evaluate everything, store and return the recovery rows. `progress(message, fraction)`: after each
    evaluation (a line worth logging), and per problem batch within one (`fraction` of all the evaluations,
    message None)."""
    run = check_run_name(config.run or Path(config.run_dir).resolve().name)
    checkpoints = discover_steps(config.run_dir, config.steps)
    total = len(config.datasets) * (1 + len(checkpoints) * (1 + len(config.ranks)) + 2 * len(config.predicted))
    done = [0]
    _check_inputs(config, run, [c.path for c in checkpoints])
    cache = Cache(config.cache)
    rows = []
    for dataset in config.datasets:

        def run_eval(model_dir, step, variant, rank=None, ds=dataset, mode=None):
            request = EvalRequest(
                model_dir=Path(model_dir),
                dataset=ds,
                sampling=config.sampling,
                cache=config.cache,
                device=config.device,
                run=run,
                step=step,
                variant=variant,
                rank=rank,
                mode=mode or (config.mode if rank else None),
            )

            def within(n: int, of: int, *_) -> None:  # problems done of this evaluation
                progress(None, min((done[0] + n / max(of, 1)) / total, 1.0))

            row = evaluate(request, within)
            done[0] += 1
            progress(f"{ds.name} step {step} {variant}: accuracy {row['accuracy']:.3f}", min(done[0] / total, 1.0))
            return row

        base = run_eval(config.base_dir, 0, "base")
        fulls = {}
        for checkpoint in checkpoints:
            full = fulls[checkpoint.step] = run_eval(checkpoint.path, checkpoint.step, "full")
            for rank in config.ranks:
                folder = variant_folder(config, run, checkpoint.step, checkpoint.path, rank)
                variant = run_eval(folder, checkpoint.step, f"rank-{rank}", rank)
                keys = _keys(config, run, dataset.name, checkpoint.step, rank, config.mode)
                rows.append(recovery_row(cache, keys, base, full, variant))
        for folder in config.predicted:
            recipe = prediction_recipe(folder)
            step, mode = int(recipe["to_step"]), f"predicted-from-{recipe['from_step']}"
            if step not in fulls:  # the real step T, when the run has it, is the prediction's "full"
                found = discover_steps(config.run_dir, [step]) if step in _steps(config.run_dir) else []
                if not found:
                    progress(f"{folder}: step {step} is not in the run folder: evaluated without a recovery")
                fulls[step] = run_eval(found[0].path, step, "full") if found else None
            variant = run_eval(folder, step, mode, int(recipe["rank"]), mode=mode)
            if fulls[step] is not None:
                keys = _keys(config, run, dataset.name, step, int(recipe["rank"]), mode)
                keys.update(keep="base", alpha=1.0, modules=recipe.get("modules"))
                rows.append(recovery_row(cache, keys, base, fulls[step], variant))
    cache.merge_run_rows(run, "recovery", rows, RECOVERY_KEY)
    return rows


def _check_inputs(config: CompareConfig, run: str, step_dirs: list[Path]) -> None:
    """Before any work: every prediction is of this run, and the base is the same model as every step."""
    for folder in config.predicted:
        made_from = prediction_recipe(folder).get("run")
        if made_from != run:
            fix = "pass the run's own predictions"
            raise UsageError(str(folder), f"a prediction of run '{run}'", f"one of run '{made_from}'", fix)
    base = Checkpoint(config.base_dir)
    for step_dir in step_dirs:  # a wrong --base fails here, before the first evaluation
        check_same_model(base, Checkpoint(step_dir))


def _keys(config: CompareConfig, run: str, dataset: str, step: int, rank: int, mode: str) -> dict:
    """The columns that say which comparison a recovery row is (`RECOVERY_KEY`, and the run)."""
    return {
        "run": run, "step": step, "rank": rank, "mode": mode, "dataset": dataset, "keep": config.keep,
        "alpha": config.alpha, "modules": config.modules,
    }  # fmt: skip


def recovery_row(cache: Cache, keys: dict, base: dict, full: dict, variant: dict) -> dict:
    """One recovery row: `keys` (run, step, rank, mode, dataset, keep, alpha, modules), the three
    evaluations' accuracies and ids (rows of `evaluations`, already stored), the recovery with its noise
    rule, and the paired counts with McNemar's p (rank-k against full, and against base)."""
    scores = [cache.eval_scores(row["eval_id"]) for row in (base, full, variant)]
    problems = sorted(scores[0])
    base_scores, full_scores, rank_scores = (np.array([s[p] for p in problems]) for s in scores)
    estimate = recovery_estimate(base_scores, full_scores, rank_scores)
    against_full, against_base = mcnemar(full_scores, rank_scores), mcnemar(base_scores, rank_scores)
    return {
        **keys, "acc_base": base["accuracy"], "acc_full": full["accuracy"], "acc_rank": variant["accuracy"],
        "recovery": estimate.recovery, "n_problems": base["n_problems"], "eval_id_base": base["eval_id"],
        "eval_id_full": full["eval_id"], "eval_id_rank": variant["eval_id"], "gain_low": estimate.gain_low,
        "gain_high": estimate.gain_high, "recovery_low": estimate.recovery_low,
        "recovery_high": estimate.recovery_high, "recovery_note": estimate.note,
        "gained_vs_full": against_full.gained, "lost_vs_full": against_full.lost, "mcnemar_full_p": against_full.p,
        "gained_vs_base": against_base.gained, "lost_vs_base": against_base.lost, "mcnemar_base_p": against_base.p,
    }  # fmt: skip


def _steps(run_dir: Path) -> set[int]:
    return {c.step for c in step_folders(run_dir)}


def prediction_recipe(folder: Path) -> dict:
    """The recipe of a folder `rlvr predict` wrote, or a UsageError saying it is not one."""
    from .predict import RECIPE_FILE as PREDICTION_FILE

    try:
        return json.loads((Path(folder) / PREDICTION_FILE).read_text())
    except (OSError, ValueError):
        raise UsageError(
            str(folder), f"a checkpoint written by `rlvr predict` (holding {PREDICTION_FILE})", "none",
            "write one: rlvr predict RUN --from-step t --to-step T --out DIR",
        ) from None  # fmt: skip


def variant_folder(config: CompareConfig, run: str, step: int, step_dir: Path, rank: int) -> Path:
    """The rank-k checkpoint of one step, built unless an up-to-date one exists."""
    folder = Cache(config.cache).variant_dir(run, step, rank, config.mode, config.alpha, config.keep, config.modules)
    recipe_file = folder / RECIPE_FILE
    if recipe_file.is_file():
        recipe = json.loads(recipe_file.read_text())
        if (
            recipe.get("step_fingerprint") == Checkpoint(step_dir).fingerprint
            and recipe.get("modules") == config.modules
            and recipe.get("base_fingerprint") == Checkpoint(config.base_dir).fingerprint
        ):
            return folder
    write_substituted(
        SubstituteConfig(
            step_dir=step_dir,
            base_dir=config.base_dir,
            out=folder,
            rank=rank,
            mode=config.mode,
            alpha=config.alpha,
            keep=config.keep,
            modules=config.modules,
            cache=config.cache,
            run=run,
            step=step,
        )
    )
    return folder
