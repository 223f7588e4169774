"""Which spectral metric tracks held-out accuracy over a run: Spearman's rank correlation over steps, with
an exact or Monte-Carlo permutation p-value.

For one metric series m(s) and the held-out accuracy a(s) at the same analysed steps s, rho is Spearman's
(Spearman 1904: Pearson's correlation of the ranks, ties given their mean rank). The p-value is two-sided
and comes from permuting the accuracies over the steps (Pitman 1937): with n <= 8 steps every one of the
n! orders is tried (exact); above, `permutations` random orders plus the observed one,
p = (1 + #{|rho_perm| >= |rho|}) / (1 + permutations) (Phipson & Smyth 2010: never 0). With few steps no
correlation can be significant (n = 4: the smallest p is 1/12), and the p-value says so. A constant
series has no rank order: rho and p are NaN. Arrays in, numbers out.

Levels drift with training time, so over one run nearly every metric "tracks" an accuracy that also
drifts. `spearman_of_changes` correlates the step-to-step changes instead (a shared trend cancels), and
`benjamini_hochberg` adjusts a table's p-values for testing many metrics at once (Benjamini & Hochberg 1995).
Across runs that share steps (seeds of one experiment), `spearman_matched` compares runs only with each other
at the same step: both quantities are ranked among the runs within each step and centred there, rho is the
pooled correlation of those ranks, and the p-value permutes the accuracies among the runs within each step
(a stratified permutation test): training time cannot make it significant.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

EXACT_UP_TO = 8
"""With at most this many steps the permutation p-value is exact (8! = 40,320 orders)."""


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho of a metric with the accuracy over `n` steps, and its permutation p-value."""

    rho: float
    p_value: float
    n: int
    exact: bool
    """True when every permutation was tried."""


def _pearson_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson's r of `x` with each row of `ys` (all already ranks, same length)."""
    xc = x - x.mean()
    yc = ys - ys.mean(axis=-1, keepdims=True)
    return (yc @ xc) / (np.sqrt((yc**2).sum(axis=-1)) * np.sqrt((xc**2).sum()))


def spearman(metric: np.ndarray, accuracy: np.ndarray, permutations: int = 9999, seed: int = 0) -> Correlation:
    """rho and its two-sided permutation p-value (see the module docstring); NaN with fewer than 3 steps
    or a constant series."""
    x, y = np.asarray(metric, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(float("nan"), float("nan"), n, False)
    from scipy.stats import rankdata  # imported here: scipy.stats takes a second to import

    rx, ry = rankdata(x), rankdata(y)
    rho = float(_pearson_rows(rx, ry[None, :])[0])
    exact = n <= EXACT_UP_TO
    if exact:
        orders = np.array(list(itertools.permutations(range(n))))
        null = _pearson_rows(rx, ry[orders])
        p = float(np.mean(np.abs(null) >= abs(rho) - 1e-12))
    else:
        rng = np.random.default_rng(seed)
        orders = np.argsort(rng.random((permutations, n)), axis=1)
        null = _pearson_rows(rx, ry[orders])
        p = (1.0 + float(np.sum(np.abs(null) >= abs(rho) - 1e-12))) / (1.0 + permutations)
    return Correlation(rho, min(1.0, p), n, exact)


def smallest_p(n: int) -> float:
    """The smallest two-sided exact p-value n steps can give (2 / n!): below it nothing is significant."""
    return 2.0 / math.factorial(n) if n >= 2 else 1.0


def spearman_of_changes(
    metric: np.ndarray, accuracy: np.ndarray, permutations: int = 9999, seed: int = 0
) -> Correlation:
    """Spearman's rho (and permutation p) between the step-to-step changes of the metric and of the
    accuracy over consecutive steps where both exist: a trend both share with training time does not
    count, only whether the metric moves when the accuracy moves. n is the number of changes."""
    x, y = np.asarray(metric, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return spearman(np.diff(x[keep]), np.diff(y[keep]), permutations, seed)


def spearman_matched(
    metric: np.ndarray, accuracy: np.ndarray, step: np.ndarray, permutations: int = 1999, seed: int = 0
) -> Correlation:
    """Spearman's rho across runs at matched steps (see the module docstring): one value of each quantity
    per (run, step); steps with fewer than 3 runs are left out. n is the number of (run, step) pairs used;
    NaN where fewer than 3 pairs remain or either quantity is constant within every step."""
    from scipy.stats import rankdata

    x, y, g = (np.asarray(a, dtype=np.float64) for a in (metric, accuracy, step))
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[keep], y[keep], g[keep]
    groups = [idx for s in np.unique(g) if (idx := np.flatnonzero(g == s)).size >= 3]
    if not groups:
        return Correlation(float("nan"), float("nan"), 0, False)
    rx = np.concatenate([rankdata(x[i]) - (i.size + 1) / 2 for i in groups])
    ry = np.concatenate([rankdata(y[i]) - (i.size + 1) / 2 for i in groups])
    n = int(rx.size)
    if not rx.any() or not ry.any():
        return Correlation(float("nan"), float("nan"), n, False)
    rho = float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))
    rng = np.random.default_rng(seed)
    offsets = np.cumsum([0] + [i.size for i in groups])
    orders = np.concatenate(
        [a + np.argsort(rng.random((permutations, b - a)), axis=1) for a, b in itertools.pairwise(offsets)],
        axis=1,
    )
    null = (ry[orders] @ rx) / np.sqrt((rx @ rx) * (ry @ ry))
    p = (1.0 + float(np.sum(np.abs(null) >= abs(rho) - 1e-12))) / (1.0 + permutations)
    return Correlation(rho, min(1.0, p), n, False)


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (the false discovery rate over the family), NaN kept as NaN:
    p_(i) * m / i, made monotone from the largest down, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid])]
    scaled = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out
