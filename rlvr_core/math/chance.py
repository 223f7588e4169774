"""Chance levels: what an i.i.d. Gaussian update (or matrix) of the same shape and size gives for each measure.

Math only: arrays in, numbers out. A measure on a run means little until one knows what a structureless
update of the same shape and Frobenius norm would give. Where the answer has a closed form it is used:

- exactly-unchanged share: 0 (a continuous update leaves no entry exactly unchanged);
- share with |dW| <= atol for a Gaussian of the same norm (entries N(0, s^2), s = |dW|_F / sqrt(mn)):
  erf(atol / (s sqrt 2));
- numerical rank share: 1 (a Gaussian matrix has full rank);
- off-principal share at k: (1 - k/m)(1 - k/n) (`geometry.chance_off_principal`);
- |cos| of two independent uniformly random unit vectors in R^m (u1 of two unrelated updates):
  E|cos| = Gamma(m/2) / (sqrt(pi) Gamma((m+1)/2)), about sqrt(2 / (pi m));
- Jaccard overlap of two independent masks of densities p and q: pq / (p + q - pq).

The others are simulated with the tool's own code (`spectral.decompose`, `heavytail.fit_esd`,
`geometry.measure`), seeded, `DRAWS` draws, giving a mean and a [min, max] band over the draws:

- rank-1 energy, the power-law alpha of the spectrum (`heavytail.fit_esd`: erratic on a Gaussian's
  Marchenko-Pastur bulk, hence the band) and the heavy-tailed verdict of a Gaussian m x n matrix
  (`gaussian_matrix`);
- rotation, spectral drift and value share of W_base + G with G Gaussian of |dW|_F: the base taken as
  diag(s_base) (the measures are invariant under rotating both sides, and a Gaussian G is too), so only
  W_base's cached spectrum is needed (`random_update`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import geometry, heavytail, spectral

DRAWS = 3
"""Simulated draws per chance level."""


@dataclass(frozen=True)
class Band:
    """A chance level: its mean and a band (the range over the draws; equal to the mean when exact)."""

    mean: float
    low: float
    high: float

    @staticmethod
    def exact(value: float) -> Band:
        return Band(value, value, value)

    @staticmethod
    def of(values: list[float]) -> Band:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return Band(math.nan, math.nan, math.nan)
        return Band(float(np.mean(finite)), float(min(finite)), float(max(finite)))


def within_share(atol: float, fro: float, shape: tuple[int, int]) -> Band:
    """The share of a Gaussian update's entries with |x| <= atol, at the update's Frobenius norm."""
    s = fro / math.sqrt(shape[0] * shape[1]) if shape[0] * shape[1] else 0.0
    return Band.exact(1.0 if s == 0 else math.erf(atol / (s * math.sqrt(2.0))))


def abs_cos(dim: int) -> Band:
    """E|cos| of two independent random unit vectors in R^dim."""
    if dim < 1:
        return Band.exact(math.nan)
    return Band.exact(math.exp(math.lgamma(dim / 2) - math.lgamma((dim + 1) / 2)) / math.sqrt(math.pi))


def jaccard(p: float, q: float) -> Band:
    """The Jaccard overlap two independent masks of densities p and q have on average."""
    union = p + q - p * q
    return Band.exact(p * q / union if union > 0 else math.nan)


@functools.lru_cache(maxsize=64)
def gaussian_matrix(shape: tuple[int, int], seed: int = 0) -> dict[str, Band]:
    """Rank-1 energy, power-law alpha and heavy-tailed share of i.i.d. Gaussian m x n matrices (`DRAWS` draws,
    seeded; alpha NaN where no tail could be fitted)."""
    energy, alpha, heavy = [], [], []
    for draw in range(DRAWS):
        g = torch.randn(*shape, generator=torch.Generator().manual_seed(seed * 1000 + draw), dtype=torch.float64)
        result = spectral.decompose(g)
        energy.append(result.stats.rank1_energy)
        fit = heavytail.fit_esd(result.sv.numpy())
        heavy.append(1.0 if fit.heavy_tailed else 0.0)
        alpha.append(fit.alpha)
    return {"rank1_energy": Band.of(energy), "alpha": Band.of(alpha), "heavy_tailed": Band.of(heavy)}


def random_update(base_sv: np.ndarray, shape: tuple[int, int], fro: float, seed: int = 0) -> dict[str, Band]:
    """Rotation (k = 8, left and right), whole-spectrum drift and value share of diag(base_sv) + G, with G
    Gaussian scaled to |G|_F = `fro` (`DRAWS` draws, seeded)."""
    m, n = shape
    base = torch.zeros(m, n, dtype=torch.float64)
    r = min(m, n, base_sv.size)
    base[torch.arange(r), torch.arange(r)] = torch.tensor(np.asarray(base_sv[:r], dtype=np.float64))
    k = min(geometry.KS[-1], r)
    eye_m, eye_n = np.eye(m)[:, :k], np.eye(n)[:, :k]  # diag(s)'s singular vectors
    vectors = geometry.BaseVectors(np.sort(base_sv[:r])[::-1], eye_m, eye_n)
    draws: dict[str, list[float]] = {"rotation_u_k8": [], "rotation_v_k8": [], "drift_all": [], "value_share": []}
    for draw in range(DRAWS):
        g = torch.randn(m, n, generator=torch.Generator().manual_seed(seed * 1000 + draw), dtype=torch.float64)
        step = base + g * (fro / float(g.norm())) if fro > 0 else base.clone()
        top = spectral.decompose(step, k)
        assert top.triplets is not None
        p = geometry.Projections(vectors, right=m >= n)
        dw = spectral.decompose(step, 0, minus=base, observe=p)
        step_w = (top.sv.numpy(), top.triplets.u.numpy(), top.triplets.v.numpy())
        got = geometry.measure(p, dw.stats, dw.sv.numpy(), shape, step_w)
        draws["rotation_u_k8"].append(_at(got.rotation_u, 8))
        draws["rotation_v_k8"].append(_at(got.rotation_v, 8))
        draws["drift_all"].append(got.drift_all if got.drift_all is not None else math.nan)
        draws["value_share"].append(got.value_share if got.value_share is not None else math.nan)
    return {name: Band.of(values) for name, values in draws.items()}


def _at(values: tuple[float | None, ...], k: int) -> float:
    value = values[geometry.KS.index(k)]
    return math.nan if value is None else value
