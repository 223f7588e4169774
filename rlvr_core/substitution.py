"""Rank-k substitution of weight updates: W_base + rank-k(W - W_base).

The central experiment of the rank-1 line of RLVR work: keep only the top-k singular directions of each
linear layer's update dW = W - W_base. Two modes:

- `truncated`:     R_k = sum_{i<=k} sigma_i u_i v_i^T (the best rank-k approximation of dW);
- `norm-matched`:  R_k rescaled to ||dW||_F, i.e. R_k * ||dW||_F / sqrt(sum_{i<=k} sigma_i^2) (AlphaRL's
                   choice: for k = 1, ||dW||_F u1 v1^T);

each times an optional scale `alpha`. `substitute_rank_k_` applies it in place to a torch model given the
base weights, for periodic rank-1 substitution during training (every k steps set each block weight to
W_base + rank-1(W - W_base), then keep training) and for building substituted checkpoints.
Math on tensors only: no files. The triplets come from `spectral` (exact, float64).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from . import spectral
from .naming import LINEAR, classify_tensor

MODES = ("truncated", "norm-matched")


def rank_k_update(delta: torch.Tensor, k: int = 1, mode: str = "truncated", alpha: float = 1.0) -> torch.Tensor:
    """The rank-k part of `delta` (float64), in `mode`, times `alpha`. A zero update stays zero."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    d64 = delta.to(torch.float64)
    t = spectral.top_triplets(d64, k)
    if t.sigma.numel() == 0:
        return torch.zeros_like(d64)
    part = (t.u * t.sigma) @ t.v.T
    if mode == "norm-matched":
        kept = float(torch.sqrt((t.sigma**2).sum()))
        part = part * (float(torch.linalg.norm(d64)) / kept)
    return part * alpha


@torch.no_grad()
def substitute_rank_k_(model: torch.nn.Module, base: Mapping[str, torch.Tensor], k: int = 1,
                       mode: str = "truncated", alpha: float = 1.0, modules: str | None = None) -> list[str]:
    """Set every linear block weight W of `model` to W_base + rank-k(W - W_base), in place.

    `base` maps parameter names (as `model.named_parameters()` gives them) to the base weights. Only
    2-D weights that `naming` classifies as linear layers are changed (embeddings, lm_head, norms and
    biases keep their current values), and only those whose name matches the regex `modules` if given.
    Returns the names changed. Works for GPT-2's in x out `Conv1D` weights too (a rank-k part is
    transpose-invariant).
    """
    pattern = re.compile(modules) if modules else None
    changed = []
    for name, param in model.named_parameters():
        if classify_tensor(name, tuple(param.shape)).kind != LINEAR:
            continue
        if pattern is not None and not pattern.search(name):
            continue
        if name not in base:
            raise KeyError(f"base weights have no '{name}': pass the base model's state_dict")
        b = base[name].to(param.device, torch.float64)
        if b.shape != param.shape:
            raise ValueError(f"'{name}': base shape {tuple(b.shape)} != model shape {tuple(param.shape)}")
        update = rank_k_update(param.to(torch.float64) - b, k, mode, alpha)
        param.copy_((b + update).to(param.dtype))
        changed.append(name)
    return changed


class PeriodicSubstitution:
    """Periodic rank-k substitution during training: every `every` optimizer steps, set each linear block
    weight to W_base + rank-k(W - W_base) (`substitute_rank_k_`), then let training continue.

    The optimizer state is left as it is (the update direction it remembers keeps pushing; only the
    weights are projected). Call `maybe_apply(model, step)` after each optimizer step; it returns the
    names it changed (empty on other steps). `base` holds the base weights of (at least) the linear block
    weights, on any device and dtype; keep it in the training dtype to halve its memory.
    """

    def __init__(self, base: Mapping[str, torch.Tensor], every: int, rank: int = 1, mode: str = "truncated",
                 alpha: float = 1.0, modules: str | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.base, self.every, self.rank, self.mode, self.alpha, self.modules = base, every, rank, mode, alpha, modules
        self.applied_at: list[int] = []

    def maybe_apply(self, model: torch.nn.Module, step: int) -> list[str]:
        if step <= 0 or step % self.every:
            return []
        changed = substitute_rank_k_(model, self.base, self.rank, self.mode, self.alpha, self.modules)
        self.applied_at.append(step)
        return changed


def linear_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's linear block weights: the `base` for `PeriodicSubstitution`."""
    return {name: p.detach().clone() for name, p in model.named_parameters()
            if classify_tensor(name, tuple(p.shape)).kind == LINEAR}
