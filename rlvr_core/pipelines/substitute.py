"""`rlvr substitute`: write a Hugging Face checkpoint folder in which every selected linear weight is
W_base + rank-k(W_step - W_base) (`math.rank_k`: truncated or norm-matched, times alpha).

Tensor by tensor, one output shard at a time (the step's sharding is kept, so memory is one shard, never
the model). Tensors that are not substituted (embeddings, norms, lm_head, biases, unselected modules) come
from the base (`keep="base"`, AlphaRL's choice) or from the step. When the cache holds this exact
(base, step) pair (same fingerprints) with at least k stored triplets, the rank-k part is rebuilt from the
cached u, sigma, v (and the cached ||dW||_F) instead of a new decomposition. `config.json`, tokenizer and
generation files are copied from the step; `rlvr_substitution.json` records how the folder was made.
The folder is built under a temporary name and published with `os.replace`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from .. import __version__
from ..cache import Cache, publishing
from ..cache.atomic import guard_output
from ..errors import UsageError
from ..math.rank_k import MODES, rank_k_part, rank_k_update
from ..readers.checkpoint import Checkpoint, check_same_tensors, matrix_view
from ..readers.layout import locate_step
from ..readers.naming import LINEAR, TensorRole
from ..system.dataroots import guard

RECIPE_FILE = "rlvr_substitution.json"
"""The recipe file in every folder `rlvr substitute` writes: how it was made."""

SKIP_FILES = re.compile(r"(\.safetensors|\.bin|\.pt|\.pth|\.ckpt)$|^(trainer_state\.json|rlvr_substitution\.json)$")


@dataclass(frozen=True, kw_only=True)
class SubstituteConfig:
    """What `rlvr substitute` builds. Fields mirror its flags."""

    step_dir: Path
    """The step checkpoint whose update is replaced."""
    base_dir: Path
    """The base checkpoint (dW = W_step - W_base)."""
    out: Path
    """The output folder: new, empty, or one `rlvr substitute` wrote before (holding its recipe file), which is
    replaced; never an input, a folder holding one, the cache, `/` or the home folder."""
    rank: int = 1
    """How many singular directions of each update are kept."""
    mode: str = "truncated"
    """`truncated` (sum of the top-k sigma u v^T) or `norm-matched` (that, rescaled to ||dW||_F)."""
    alpha: float = 1.0
    """Scale of the rank-k term."""
    keep: str = "base"
    """Where the other tensors come from: `base` or `step`."""
    modules: str | None = None
    """Regex on tensor names: only matching linear weights are substituted (default: all of the blocks)."""
    cache: Path | None = None
    """A cache to take stored triplets from (None: always decompose)."""
    run: str | None = None
    """The run the step belongs to, for the recipe (default: from the step folder's layout)."""
    step: int | None = None
    """The step, for the recipe (default: from the step folder's name)."""


def write_substituted(config: SubstituteConfig) -> dict:
    """Build the substituted checkpoint folder; returns its recipe."""
    _check(config)
    guard_output(
        config.out,
        RECIPE_FILE,
        inputs=[config.step_dir, config.base_dir],
        protected=[config.cache] if config.cache else [],
    )
    step_ck, base_ck = Checkpoint(config.step_dir), Checkpoint(config.base_dir)
    pattern = re.compile(config.modules) if config.modules else None
    roles = {  # stored tensor -> its selected linear matrices (each expert of a fused tensor is one)
        name: chosen
        for name, held in step_ck.roles_by_tensor().items()
        if (chosen := [r for r in held if r.kind == LINEAR and (pattern is None or pattern.search(r.name))])
    }
    selected = set(roles)
    if not selected:
        raise UsageError(
            "rlvr substitute --modules", "a pattern matching at least one linear weight",
            f"{config.modules!r} matching none of {len(step_ck.tensors)} tensors",
            "check the pattern against the tensor names (rlvr runs / the Layers page list them)",
        )  # fmt: skip
    names = sorted(selected if config.keep == "step" else set(step_ck.tensors))
    check_same_tensors(base_ck.shapes, step_ck.shapes, names, str(base_ck.path), str(step_ck.path))
    stored = (
        cached_triplets(Cache(config.cache), step_ck.fingerprint, base_ck.fingerprint, config.rank)
        if config.cache
        else None
    )
    with publishing(Path(config.out), marker=RECIPE_FILE) as tmp:
        used_cache = _write_shards(step_ck, base_ck, roles, config, stored, tmp)
        for item in Path(config.step_dir).iterdir():
            if item.is_file() and (not SKIP_FILES.search(item.name) or item.name.endswith(".index.json")):
                shutil.copy2(guard(item), tmp / item.name)
        matrices = sum(len(held) for held in roles.values())
        recipe = _recipe(config, step_ck, base_ck, sorted(selected), used_cache, matrices)
        (tmp / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe


def _write_shards(step_ck, base_ck, roles: dict[str, list[TensorRole]], config, stored, tmp: Path) -> int:
    used_cache = 0
    for file in step_ck.files:
        tensors = {}
        for name in (n for n, info in step_ck.tensors.items() if info.file == file):
            if name in roles:
                tensors[name], from_cache = substituted_tensor(step_ck, base_ck, name, roles[name], config, stored)
                used_cache += from_cache
            else:
                tensors[name] = (base_ck if config.keep == "base" else step_ck).read_tensor(name)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / file.name), metadata={"format": "pt"})
    return used_cache


def substituted_tensor(
    step_ck, base_ck, name: str, roles: list[TensorRole], config: SubstituteConfig, stored
) -> tuple[torch.Tensor, int]:
    """One stored tensor with each of its selected matrices set to W_base + rank-k(dW) (each expert of a
    fused 3-D tensor on its own), in the step's dtype; and how many matrices used cached triplets."""
    w_step = step_ck.read_tensor(name)
    w_base = base_ck.read_tensor(name).to(torch.float64)
    out, from_cache = w_base.clone(), 0
    for role in roles:
        entry = stored.get(role.name) if stored else None
        if entry is not None:
            sigma, u, v, fro = entry
            r = config.rank
            update = rank_k_part(sigma[:r], u[:, :r], v[:, :r], config.mode, fro, config.alpha)
        else:
            delta = matrix_view(w_step, role).to(torch.float64) - matrix_view(w_base, role)
            update = rank_k_update(delta, config.rank, config.mode, config.alpha)
        view = matrix_view(out, role)  # out x in, a view into `out`: the update lands in the stored layout
        view += update
        from_cache += entry is not None
    return out.to(w_step.dtype), from_cache


def cached_triplets(cache: Cache, step_fp: str, base_fp: str, rank: int) -> dict | None:
    """tensor -> (sigma, u, v, ||dW||_F) in float64 from the cached step of this exact (step, base) pair,
    when it stored at least `rank` triplets per tensor; else None."""
    found = cache.find_step(step_fp, base_fp)
    if found is None:
        return None
    triplets, layers = cache.step_triplets(*found), cache.read_step(*found, "layers")
    if triplets is None or layers is None:
        return None
    fro = {r["tensor"]: r["fro_norm"] for r in layers.to_pylist() if r["target"] == "dW"}
    if any(len(sigma) < rank for sigma, _, _ in triplets.values()):
        return None
    return {
        tensor: (
            torch.from_numpy(sigma[:rank].copy()),
            torch.from_numpy(u[:, :rank].copy()),
            torch.from_numpy(v[:, :rank].copy()),
            fro.get(tensor, 0.0),
        )
        for tensor, (sigma, u, v) in triplets.items()
    }


def _check(config: SubstituteConfig) -> None:
    if config.mode not in MODES:
        raise UsageError("--mode", f"one of {', '.join(MODES)}", repr(config.mode), "pass --mode truncated")
    if config.rank < 1:
        raise UsageError("--rank", "an integer >= 1", str(config.rank), "pass --rank 1")
    if config.keep not in ("base", "step"):
        raise UsageError("--keep", "base or step", repr(config.keep), "pass --keep base")
    if config.modules:
        try:
            re.compile(config.modules)
        except re.error as exc:
            raise UsageError(
                "--modules", "a regular expression", f"{config.modules!r} ({exc})", "fix the regex"
            ) from None


def _recipe(config, step_ck, base_ck, selected, used_cache, matrices: int) -> dict:
    located = locate_step(config.step_dir)
    return {
        "tool": f"rlvr-lens {__version__}",
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "step_checkpoint": str(Path(config.step_dir).resolve()),
        "base": str(Path(config.base_dir).resolve()),
        "step_fingerprint": step_ck.fingerprint,
        "base_fingerprint": base_ck.fingerprint,
        "run": config.run or (located[1].name if located else None),
        "step": config.step if config.step is not None else (located[0] if located else None),
        "rank": config.rank,
        "mode": config.mode,
        "alpha": config.alpha,
        "keep": config.keep,
        "modules": config.modules,
        "substituted": selected,
        "triplets": {"from_cache": used_cache, "computed": matrices - used_cache},
    }
