"""`rlvr compare`: base, full and rank-k variants of a run's steps, evaluated on the same problems with
the same sampling, and the recovery of each variant:

    recovery = (acc_rank_k - acc_base) / (acc_full - acc_base)      (None when acc_full == acc_base)

The rank-k checkpoints are built once into `<cache>/variants/<run>/step-<N>-rank<k>-<mode>/` (rebuilt
when the step or base changed); evaluations are cached by content (`evaluation.eval_id`). The recovery
rows go to the run-level `recovery` view (one row per step, rank, mode and dataset; a rerun replaces its
own rows and keeps the others).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import store
from .checkpoint import Checkpoint
from .datasets import EvalSet
from .evaluation import RECIPE_FILE, EvalRequest, evaluate
from .generation import Sampling
from .layout import discover_steps
from .variants import SubstituteConfig, write_substituted


@dataclass
class CompareConfig:
    """What `rlvr compare` does. Fields mirror its flags."""

    run_dir: Path
    base_dir: Path
    datasets: list[EvalSet]
    steps: list[int] | None = None
    """Steps to compare (None: every checkpoint of the run)."""
    ranks: list[int] = field(default_factory=lambda: [1])
    mode: str = "truncated"
    alpha: float = 1.0
    keep: str = "base"
    modules: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    cache: Path = Path(store.DEFAULT_CACHE)
    device: str = "cpu"
    run: str | None = None


def compare(config: CompareConfig, progress: Callable[[str], None] = lambda m: None) -> list[dict]:
    """Evaluate everything, store and return the recovery rows."""
    run = store.check_run_name(config.run or Path(config.run_dir).resolve().name)
    checkpoints = discover_steps(config.run_dir, config.steps)
    rows = []
    for dataset in config.datasets:
        def run_eval(model_dir, step, variant, rank=None, ds=dataset):
            row = evaluate(EvalRequest(Path(model_dir), ds, config.sampling, config.cache, config.device, run, step,
                                       variant, rank, config.mode if rank else None))
            progress(f"{ds.name} step {step} {variant}: accuracy {row['accuracy']:.3f}")
            return row
        base = run_eval(config.base_dir, 0, "base")
        for checkpoint in checkpoints:
            full = run_eval(checkpoint.path, checkpoint.step, "full")
            for rank in config.ranks:
                folder = variant_folder(config, run, checkpoint.step, checkpoint.path, rank)
                variant = run_eval(folder, checkpoint.step, f"rank-{rank}", rank)
                gain = full["accuracy"] - base["accuracy"]
                rows.append({"run": run, "step": checkpoint.step, "rank": rank, "mode": config.mode,
                             "dataset": dataset.name, "acc_base": base["accuracy"], "acc_full": full["accuracy"],
                             "acc_rank": variant["accuracy"],
                             "recovery": (variant["accuracy"] - base["accuracy"]) / gain if gain else None,
                             "n_problems": base["n_problems"], "eval_id_base": base["eval_id"],
                             "eval_id_full": full["eval_id"], "eval_id_rank": variant["eval_id"]})
    _store(config.cache, run, rows)
    return rows


def variant_folder(config: CompareConfig, run: str, step: int, step_dir: Path, rank: int) -> Path:
    """The rank-k checkpoint of one step, built unless an up-to-date one exists."""
    alpha = "" if config.alpha == 1 else f"-a{config.alpha:g}"
    folder = Path(config.cache) / "variants" / run / f"step-{step}-rank{rank}-{config.mode}{alpha}-keep{config.keep}"
    recipe_file = folder / RECIPE_FILE
    if recipe_file.is_file():
        recipe = json.loads(recipe_file.read_text())
        if (recipe.get("step_fingerprint") == Checkpoint(step_dir).fingerprint and recipe.get("modules") == config.modules
                and recipe.get("base_fingerprint") == Checkpoint(config.base_dir).fingerprint):
            return folder
    write_substituted(SubstituteConfig(step_dir=step_dir, base_dir=config.base_dir, out=folder, rank=rank,
                                       mode=config.mode, alpha=config.alpha, keep=config.keep,
                                       modules=config.modules, cache=config.cache, run=run, step=step))
    return folder


def _store(cache: Path, run: str, rows: list[dict]) -> None:
    file = Path(cache) / "runs" / run / "recovery.parquet"
    new_keys = {(r["step"], r["rank"], r["mode"], r["dataset"]) for r in rows}
    old = [r for r in (pq.read_table(file).to_pylist() if file.is_file() else [])
           if (r["step"], r["rank"], r["mode"], r["dataset"]) not in new_keys]
    table = pa.Table.from_pylist(old + rows, schema=store.RUN_SCHEMAS["recovery"])
    store.write_run_tables(Path(cache), run, {"recovery": table})



