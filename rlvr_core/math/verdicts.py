"""The claims board's verdict rules: a measure (median and interval over tensors) against its chance level.

Math only: numbers in, a verdict out. Each rule is one function, named in `RULES`, stated here and in the
docs (docs/questions/claims-board.md), and tested on planted updates (tests/test_claims.py). A verdict is
`supported`, `contradicted` or `not measurable here` (with the reason); "the interval" is the 95%
distribution-free interval of the median over tensors (`median_interval`), "chance" the band of
`math.chance` (an i.i.d. Gaussian update of the same shape and norm).

- rank-1 (seed 1): supported when the rank-1 energy's interval lies above 5 x chance's top.
- heavy tails (seed 3): supported when >= 80% of W's spectra fit heavy-tailed and the share's (Wilson)
  interval lies above chance.
- u1 alignment grows (seed 4): supported when the Spearman rho of the median |cos(u1_t, u1_final)| over the
  steps before the last is > 0 with p < 0.05; not measurable with fewer than 5 such steps (with 3 or 4 even a
  perfect rise has a two-sided permutation p of 2/n! >= 0.083).
- sparse update (Mukherjee 1): supported when the median exactly-unchanged share is >= 0.7 (the paper: 5-30%
  of the parameters updated); a step read from 16-bit weights: not measurable (rounding, not sparsity).
- nearly full-rank (Mukherjee 2): supported when the median numerical-rank share is >= 0.9.
- little spectral drift (Zhu 1), little principal rotation (Zhu 2, top-8 left subspace): contradicted when
  the interval lies wholly above chance's top (more than a random update of the same norm gives), else
  supported.
- off-principal (Zhu 3): contradicted when the off-principal share's interval lies wholly below chance (the
  update drawn to the base's principal directions), else supported.
- rotation over values (Jin 1): supported when the median direction share (1 - value share) is >= 0.5.
- shared u1 across runs: supported when the interval of the median |cos| of the runs' u1 lies above chance.
In every case not supported means contradicted, unless the measure is missing (not measurable here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from .chance import Band

SUPPORTED, CONTRADICTED, NOT_MEASURABLE = "supported", "contradicted", "not measurable here"


@dataclass(frozen=True)
class Summary:
    """A measure over tensors: its median, the median's 95% interval, and how many values."""

    value: float
    low: float
    high: float
    n: int


def median_interval(values, level: float = 0.95) -> Summary:
    """The median of the finite `values` and its distribution-free interval (order statistics at the
    binomial(n, 1/2) quantiles); for n < 6 the interval is the range."""
    data = np.sort(np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64))
    n = int(data.size)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    median = float(np.median(data))
    if n < 6:
        return Summary(median, float(data[0]), float(data[-1]), n)
    j = int(scipy_stats.binom.ppf((1 - level) / 2, n, 0.5))
    k = int(scipy_stats.binom.ppf(1 - (1 - level) / 2, n, 0.5))
    return Summary(median, float(data[max(j - 1, 0)]), float(data[min(k, n - 1)]), n)


def rank_one(m: Summary, chance: Band) -> str:
    return SUPPORTED if m.low > 5 * chance.high else CONTRADICTED


def heavy_tails(share: float, low: float, chance: Band) -> str:
    return SUPPORTED if share >= 0.8 and low > chance.high else CONTRADICTED


def growing(rho: float, p: float) -> str:
    return SUPPORTED if rho > 0 and p < 0.05 else CONTRADICTED


def sparse(m: Summary) -> str:
    return SUPPORTED if m.value >= 0.7 else CONTRADICTED


def full_rank(m: Summary) -> str:
    return SUPPORTED if m.value >= 0.9 else CONTRADICTED


def at_most_chance(m: Summary, chance: Band) -> str:
    """Drift and rotation: not significantly more than a random update of the same size gives."""
    return CONTRADICTED if m.low > chance.high else SUPPORTED


def off_principal(m: Summary, chance: Band) -> str:
    return CONTRADICTED if m.high < chance.low else SUPPORTED


def directions(m: Summary) -> str:
    return SUPPORTED if m.value >= 0.5 else CONTRADICTED


def above_chance(m: Summary, chance: Band) -> str:
    return SUPPORTED if m.low > chance.high else CONTRADICTED
