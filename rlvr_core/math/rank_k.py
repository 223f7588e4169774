"""The rank-k part of a weight update: what rank-k substitution puts in place of dW = W - W_base.

The central experiment of the rank-1 line of RLVR work (the "rank-1 update" finding): keep only the top-k
singular directions of each linear layer's update. Two modes:

- `truncated`:     R_k = sum_{i<=k} sigma_i u_i v_i^T (the best rank-k approximation of dW,
                   Eckart & Young 1936);
- `norm-matched`:  R_k rescaled to ||dW||_F, i.e. R_k * ||dW||_F / sqrt(sum_{i<=k} sigma_i^2) (AlphaRL's
                   choice: for k = 1, ||dW||_F u1 v1^T);

each times a scale `alpha`. Math on tensors only: no files, no models. The triplets come from `spectral`
(exact, float64). `rank` is the number of directions kept (the substitution's rank).
"""

from __future__ import annotations

import torch

from . import spectral

MODES = ("truncated", "norm-matched")


def rank_k_part(
    sigma: torch.Tensor, u: torch.Tensor, v: torch.Tensor, mode: str, fro: float, alpha: float = 1.0
) -> torch.Tensor:
    """sum_i sigma_i u_i v_i^T over the given triplets (columns of u, v), rescaled to `fro` = ||dW||_F in
    `norm-matched` mode, times `alpha`. A zero part stays zero."""
    part = (u * sigma) @ v.T
    kept = float(torch.sqrt((sigma.to(torch.float64) ** 2).sum())) if sigma.numel() else 0.0
    if mode == "norm-matched" and kept > 0:
        part = part * (fro / kept)
    return part * alpha


def rank_k_update(
    delta: torch.Tensor, rank: int = 1, mode: str = "truncated", alpha: float = 1.0, *, k: int | None = None
) -> torch.Tensor:
    """The rank-`rank` part of `delta` (float64), in `mode`, times `alpha`. A zero update stays zero.
    (`k=` is the old name of `rank`, still accepted.)"""
    rank = k if k is not None else rank
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    d64 = delta.to(torch.float64)
    t = spectral.top_triplets(d64, rank)
    if t.sigma.numel() == 0:
        return torch.zeros_like(d64)
    return rank_k_part(t.sigma, t.u, t.v, mode, float(torch.linalg.norm(d64)), alpha)
