"""`rlvr predict`: predict a later step of a run from its cached early steps (`math.predict`: rank-k
extrapolation, AlphaRL's linear evolution), score the prediction against the real step where it is
analysed, and write the predicted checkpoint.

From the cache alone: sigma_1..k of each linear weight's update at every analysed step <= from_step
(the `vectors` view), and u_i, v_i at from_step. The scores go to the run-level `predictions` view (merged:
one row per from_step, to_step, tensor and rank); `fro_error` reads the real dW(to_step) from the step's
checkpoint files, one tensor at a time, while they are still there. With `out`, the predicted checkpoint
(W_base + sum_i s_i(T) u_i(t) v_i(t)^T for each predicted weight, every other tensor from the base; the
base's sharding, config and tokenizer files) is built under a temporary name, published with `os.replace`
and described by `rlvr_prediction.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from .. import __version__
from ..cache import Cache, check_run_name, publishing
from ..cache.atomic import guard_output
from ..errors import UsageError
from ..math.predict import predicted_sigmas, predicted_update, prediction_error
from ..readers.checkpoint import Checkpoint, matrix_view
from ..readers.formats import open_checkpoint
from ..readers.naming import TensorRole, classify_tensor
from ..system.dataroots import guard
from .substitute import SKIP_FILES

RECIPE_FILE = "rlvr_prediction.json"
"""The recipe file in every folder `rlvr predict` writes."""
PREDICTION_KEY = ("from_step", "to_step", "tensor", "rank")


@dataclass(frozen=True, kw_only=True)
class PredictConfig:
    """What `rlvr predict` does. Fields mirror its flags."""

    run: str
    """The analysed run."""
    from_step: int
    """The last step the prediction may use (t)."""
    to_step: int
    """The step predicted (T > t; need not be trained yet)."""
    rank: int = 1
    """Directions of each update extrapolated (at most the triplets the analysis cached)."""
    cache: Path = Path("cache")
    """The cache holding the run's analysis."""
    base: Path | None = None
    """The base model folder (default: the one the analysis recorded)."""
    out: Path | None = None
    """Where to write the predicted checkpoint (None: only the scores)."""
    modules: str | None = None
    """Regex on tensor names: only matching weights are predicted (the others stay the base's)."""


@dataclass
class Triplets:
    """The cached top-k triplets of one step's updates, by tensor (u, v: columns the singular vectors)."""

    sigma: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    v: dict[str, np.ndarray]


def predict(config: PredictConfig) -> dict:
    """Score the prediction (and write the checkpoint with `out`); returns a summary."""
    run, cache = check_run_name(config.run), Cache(config.cache)
    _check(config)
    analysed = [s for s in cache.steps_with(run, "vectors") if s > 0]
    fitted = [s for s in analysed if s <= config.from_step]
    if config.from_step not in analysed:
        raise UsageError(
            f"rlvr predict {run} --from-step {config.from_step}",
            f"an analysed step of run '{run}'",
            f"steps {analysed or 'none'}",
            "pass one of them (rlvr runs lists them), or analyse that step first",
        )
    triplets = {s: _triplets(cache, run, s) for s in fitted}
    final = _triplets(cache, run, config.to_step) if config.to_step in analysed else None
    pattern = re.compile(config.modules) if config.modules else None
    names = sorted(n for n in triplets[config.from_step].sigma if pattern is None or pattern.search(n))
    if not names:
        raise UsageError(
            "rlvr predict --modules", "a pattern matching at least one analysed weight",
            f"{config.modules!r} matching none of {len(triplets[config.from_step].sigma)}",
            "check the pattern against the tensor names (the Layers page lists them)",
        )  # fmt: skip
    base_dir, paths = _paths(cache, run, config)
    final_dir = paths.get(config.to_step)
    # the real step's files, opened once (each tensor is read from them), when they are still there
    real = _opened(final_dir, base_dir) if final and final_dir and final_dir.exists() else None
    rows, updates = [], {}
    for name in names:
        row, update = _predict_tensor(name, fitted, triplets, final, config, real)
        rows.append(row)
        updates[name] = update
    cache.merge_run_rows(run, "predictions", rows, PREDICTION_KEY)
    if config.out is not None:
        _write(config, base_dir, updates, fitted)
    errors = [r["fro_error"] for r in rows if r["fro_error"] == r["fro_error"] and r["fro_error"] is not None]
    cosines = [r["cos_u1"] for r in rows if r["cos_u1"] is not None]
    return {
        "run": run,
        "tensors": len(rows),
        "fitted_steps": fitted,
        "median_cos_u1": float(np.median(cosines)) if cosines else None,
        "median_fro_error": float(np.median(errors)) if errors else None,
        "out": str(config.out) if config.out else None,
    }


def _predict_tensor(name, fitted, triplets, final, config, real) -> tuple[dict, np.ndarray]:
    k = config.rank
    stored = min(len(triplets[s].sigma[name]) for s in fitted)
    if stored < k:
        raise UsageError(
            f"rlvr predict --rank {k}", f"at most the {stored} triplets the analysis cached for {name}", str(k),
            f"pass --rank {stored}, or analyse again with --topk {k}",
        )  # fmt: skip
    history = np.array([triplets[s].sigma[name][:k] for s in fitted])
    sigma_hat, fits = predicted_sigmas(np.array(fitted, dtype=float), history, config.to_step)
    u_t, v_t = triplets[config.from_step].u[name][:, :k], triplets[config.from_step].v[name][:, :k]
    update = predicted_update(sigma_hat, u_t, v_t)
    info = classify_tensor(name, (u_t.shape[0], v_t.shape[0]))
    row = {
        "run": config.run, "from_step": config.from_step, "to_step": config.to_step, "tensor": name,
        "layer": info.layer, "module": info.module, "rank": k, "sigma_pred": float(sigma_hat[0]),
        "cos_u1": None, "sigma_real": None, "sigma_error": None, "fro_error": None,
        "fit_slope": fits[0].slope, "fit_intercept": fits[0].intercept, "fit_r2": fits[0].r2,
        "n_fit_steps": len(fitted),
    }  # fmt: skip
    if final is not None and name in final.sigma:
        delta = _real_delta(name, real)
        score = prediction_error(
            sigma_hat, u_t, v_t, final.u[name][:, 0], float(final.sigma[name][0]),
            delta if delta is not None else np.zeros_like(update),
        )  # fmt: skip
        row.update(cos_u1=score.cos_u1, sigma_real=float(final.sigma[name][0]), sigma_error=score.sigma_error)
        row["fro_error"] = score.fro_error if delta is not None else None
    return row, update


def _opened(step_dir: Path, base_dir: Path) -> Real:
    """The real step's and the base's files, opened once, with the matrices they hold by name."""
    step = open_checkpoint(step_dir)
    return Real(step, open_checkpoint(base_dir), {role.name: role for role, _ in step.roles()})


@dataclass(frozen=True)
class Real:
    """The real step T's files and the base's: where `rlvr predict` reads dW(T) to score the prediction."""

    step: Checkpoint
    base: Checkpoint
    roles: dict[str, TensorRole]
    """matrix name (as the analysis names it: one per expert of a fused tensor) -> where it is stored."""


def _real_delta(name: str, real: Real | None) -> np.ndarray | None:
    """dW(T) of one matrix in the triplets' orientation (out x in), from the (step, base) files (None when
    they are gone)."""
    if real is None or name not in real.roles:
        return None
    role = real.roles[name]
    return (real.step.read_matrix(role).to(torch.float64) - real.base.read_matrix(role).to(torch.float64)).numpy()


def _triplets(cache: Cache, run: str, step: int) -> Triplets:
    stored = cache.step_triplets(run, step)
    if stored is None:
        raise UsageError(
            f"run '{run}' step {step}", "cached singular triplets (the `vectors` view)", "none",
            f"analyse the step again: rlvr analyze ... --steps {step}",
        )  # fmt: skip
    found = Triplets({}, {}, {})
    for tensor, (sigma, u, v) in stored.items():
        found.sigma[tensor], found.u[tensor], found.v[tensor] = sigma, u, v
    return found


def _paths(cache: Cache, run: str, config: PredictConfig) -> tuple[Path, dict[int, Path]]:
    """The base folder and each analysed step's checkpoint folder, as the analysis recorded them."""
    frame = cache.queries().checkpoints()
    frame = frame[frame["run"] == run]
    recorded = frame.loc[frame["is_base"], "path"].tolist() if "is_base" in frame else []
    base = config.base or (Path(recorded[0]) if recorded else None)
    if base is None or not Path(base).exists():
        raise UsageError(
            "rlvr predict --base", "the run's base model folder", f"{base or 'none recorded'} (not there)",
            "pass --base DIR",
        )  # fmt: skip
    return Path(base), {int(s): Path(p) for s, p in zip(frame["step"], frame["path"], strict=True)}


def _write(config: PredictConfig, base_dir: Path, updates: dict[str, np.ndarray], fitted: list[int]) -> None:
    assert config.out is not None
    guard_output(config.out, RECIPE_FILE, inputs=[base_dir], protected=[config.cache])
    base = Checkpoint(base_dir)
    held = base.roles_by_tensor()
    with publishing(Path(config.out), marker=RECIPE_FILE) as tmp:
        for file in base.files:
            tensors = {}
            for name in (n for n, info in base.tensors.items() if info.file == file):
                tensors[name] = _predicted_tensor(base.read_tensor(name), held.get(name, []), updates).contiguous()
            save_file(tensors, str(tmp / file.name), metadata={"format": "pt"})
        for item in Path(base_dir).iterdir():
            if item.is_file() and (not SKIP_FILES.search(item.name) or item.name.endswith(".index.json")):
                shutil.copy2(guard(item), tmp / item.name)
        recipe = {
            "tool": f"rlvr-lens {__version__}", "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "run": config.run, "from_step": config.from_step, "to_step": config.to_step, "rank": config.rank,
            "fitted_steps": fitted, "base": str(Path(base_dir).resolve()), "base_fingerprint": base.fingerprint,
            "modules": config.modules, "predicted": sorted(updates),
            "formula": "W_base + sum_i s_i(to_step) u_i(from_step) v_i(from_step)^T, s_i linear in the step",
        }  # fmt: skip
        (tmp / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")


def _predicted_tensor(weight: torch.Tensor, roles: list[TensorRole], updates: dict[str, np.ndarray]) -> torch.Tensor:
    """A base tensor with the predicted update added to each matrix it holds (each expert of a fused tensor
    on its own, through an out x in view), in its own dtype; unchanged when none is predicted."""
    chosen = [r for r in roles if r.name in updates]
    if not chosen:
        return weight
    out = weight.to(torch.float64)
    for role in chosen:
        view = matrix_view(out, role)
        view += torch.from_numpy(updates[role.name])
    return out.to(weight.dtype)


def _check(config: PredictConfig) -> None:
    if config.rank < 1:
        raise UsageError("--rank", "an integer >= 1", str(config.rank), "pass --rank 1")
    if config.to_step <= config.from_step:
        raise UsageError(
            "--to-step", f"a step after --from-step {config.from_step}", str(config.to_step), "pass a later step"
        )
    if config.modules:
        try:
            re.compile(config.modules)
        except re.error as exc:
            raise UsageError("--modules", "a regular expression", f"{config.modules!r} ({exc})", "fix it") from None
