"""Rank-1 dynamics and singular-vector alignment across the steps of a run.

Math only: arrays in, numbers out. The quantities (per tensor, over the steps t_1 < ... < t_T of a run):

- |cos(a, b)| = |a . b| / (|a| |b|): sign-invariant, since a singular vector's sign is arbitrary.
  For u1 and v1 of dW: with the final step, the previous step and the first step (the paper's
  "u1 alignment grows over training" claim is cos_u_final rising towards 1).
- Top-k subspace overlap ||U_a^T U_b||_F^2 / k in [0, 1] (1: the same k-dimensional subspace).
- Overlap with the base's principal directions: ||U_base,k^T u1||^2, the share of dW's u1 that lies in
  the span of W_base's top-k left singular vectors (does RL move along the base's principal directions?).
- Linearity of the rank-1 trajectory (AlphaRL's "rank-1 linear dynamics"): the points p_t = sigma1_t u1_t
  (signs made consistent with the final step) fitted by a straight line p_t ~ a + b t; the coefficient of
  determination R^2 = 1 - sum_t |p_t - a - b t|^2 / sum_t |p_t - mean p|^2. `trajectory_r2` computes it
  from all the points at once; `RunningLineFit` from running sums, one step at a time (a 7B run's vectors
  never sit in memory together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def abs_cos(a: np.ndarray, b: np.ndarray) -> float:
    """|cos| of the angle between two vectors; NaN when either is zero."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return math.nan
    return min(abs(float(np.dot(a, b))) / (na * nb), 1.0)


def subspace_overlap(ua: np.ndarray, ub: np.ndarray) -> float:
    """||Ua^T Ub||_F^2 / k for column-orthonormal Ua, Ub (k = the smaller number of columns)."""
    k = min(ua.shape[1], ub.shape[1])
    if k == 0:
        return math.nan
    return float(np.sum((ua[:, :k].T @ ub[:, :k]) ** 2) / k)


def base_overlap(u1: np.ndarray, base_u: np.ndarray) -> float:
    """Share of |u1|^2 inside the span of the base's top singular vectors (columns of base_u); at most 1
    (vectors stored in float32 can add up to a hair over it)."""
    norm = float(np.dot(u1, u1))
    if norm == 0.0 or base_u.shape[1] == 0:
        return math.nan
    return min(float(np.sum((base_u.T @ u1) ** 2) / norm), 1.0)


def trajectory_r2(steps: np.ndarray, points: np.ndarray) -> float:
    """R^2 of a straight-line fit of `points` (T x d) over `steps` (T,); NaN for fewer than 3 steps."""
    steps = np.asarray(steps, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if len(steps) < 3:
        return math.nan
    design = np.stack([np.ones_like(steps), steps], axis=1)
    coef, *_ = np.linalg.lstsq(design, points, rcond=None)
    residual = float(np.sum((points - design @ coef) ** 2))
    total = float(np.sum((points - points.mean(axis=0)) ** 2))
    return math.nan if total == 0.0 else 1.0 - residual / total


def consistent_signs(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Flip each row of `vectors` so it points the same way as `reference` (dot product >= 0)."""
    signs = np.where(vectors @ reference < 0, -1.0, 1.0)
    return vectors * signs[:, None]


@dataclass
class RunningLineFit:
    """Running sums for the straight-line fit of p_t = sigma1_t * u1_t over steps t (`trajectory_r2`
    without holding the points): add one step at a time, then read `r2()`."""

    n: int = 0
    st: float = 0.0
    stt: float = 0.0
    spp: float = 0.0
    sp: np.ndarray | None = None
    stp: np.ndarray | None = None
    first_sigma: float = math.nan
    last_sigma: float = math.nan

    def add(self, t: float, p: np.ndarray, sigma: float) -> None:
        if self.sp is None or self.stp is None:
            self.sp, self.stp, self.first_sigma = np.zeros_like(p), np.zeros_like(p), sigma
        self.n += 1
        self.st += t
        self.stt += t * t
        self.spp += float(p @ p)
        self.sp += p
        self.stp += t * p
        self.last_sigma = sigma

    def r2(self) -> float:
        """R^2 of the fit; NaN for fewer than 3 steps or points that do not move."""
        if self.n < 3 or self.sp is None or self.stp is None:
            return math.nan
        total = self.spp - float(self.sp @ self.sp) / self.n
        stt_c = self.stt - self.st**2 / self.n
        if total <= 0.0 or stt_c <= 0.0:
            return math.nan
        slope = (self.stp - self.st * self.sp / self.n) / stt_c
        return 1.0 - max(total - float(slope @ slope) * stt_c, 0.0) / total
