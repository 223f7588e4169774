"""Rank-k substitution on a live torch model: W_base + rank-k(W - W_base), in place, once or periodically.

`substitute_rank_k_` sets every linear block weight of a model to W_base + rank-k(dW) (the rank-k part
from `math.rank_k`: truncated or norm-matched, times alpha); `PeriodicSubstitution` does it every `every`
optimizer steps during training (the seed paper's periodic rank-1 substitution: every k steps set each
block weight to W_base + rank-1(W - W_base), then keep training); `linear_state` copies the base weights
it needs. Tensors and modules only: no files (the Trainer callback that reads a base folder is
`training.callbacks`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..math.rank_k import MODES, rank_k_update
from ..readers.checkpoint import check_same_tensors
from ..readers.naming import LINEAR, classify_tensor

__all__ = ["MODES", "PeriodicSubstitution", "linear_state", "rank_k_update", "substitute_rank_k_"]


@torch.no_grad()
def substitute_rank_k_(
    model: torch.nn.Module,
    base: Mapping[str, torch.Tensor],
    rank: int = 1,
    mode: str = "truncated",
    alpha: float = 1.0,
    modules: str | None = None,
    *,
    k: int | None = None,
) -> list[str]:
    """Set every linear block weight W of `model` to W_base + rank-k(W - W_base), in place (k = `rank`;
    `k=` is its old name, still accepted).

    `base` maps parameter names (as `model.named_parameters()` gives them) to the base weights. Only
    2-D weights that `naming` classifies as linear layers are changed (embeddings, lm_head, norms and
    biases keep their current values), and only those whose name matches the regex `modules` if given.
    Returns the names changed. Works for GPT-2's in x out `Conv1D` weights too (a rank-k part is
    transpose-invariant).
    """
    rank = k if k is not None else rank
    pattern = re.compile(modules) if modules else None
    params = {
        name: param
        for name, param in model.named_parameters()
        if classify_tensor(name, tuple(param.shape)).kind == LINEAR and (pattern is None or pattern.search(name))
    }
    check_same_tensors(
        {n: tuple(b.shape) for n, b in base.items()},
        {n: tuple(p.shape) for n, p in params.items()},
        params,
        "weights given",
        "the model",
        "model's",
    )
    changed = []
    for name, param in params.items():
        b = base[name].to(param.device, torch.float64)
        update = rank_k_update(param.to(torch.float64) - b, rank, mode, alpha)
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

    def __init__(
        self,
        base: Mapping[str, torch.Tensor],
        every: int,
        rank: int = 1,
        mode: str = "truncated",
        alpha: float = 1.0,
        modules: str | None = None,
    ) -> None:
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
    return {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if classify_tensor(name, tuple(p.shape)).kind == LINEAR
    }
