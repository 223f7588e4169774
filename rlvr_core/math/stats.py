"""Uncertainty of accuracies measured on a finite set of problems: when a gain is real, and how sure a
recovery is.

Every accuracy here is a mean over the same problems, so comparisons are paired: the per-problem scores
(the share of a problem's samples graded correct) of the base, the full model and a variant are resampled
together, problem by problem (the paired bootstrap, Efron & Tibshirani 1993, ch. 13; `RESAMPLES` = 2000
resamples, seeded, percentile intervals at `LEVEL` = 95%).

Recovery (the rank-k literature's "share of the gain kept") is

    recovery = (acc_variant - acc_base) / (acc_full - acc_base)

and it means nothing unless the full model's gain over the base is real. The rule:

- acc_full <= acc_base: no recovery (there is no gain to keep); the note says so.
- the 95% paired-bootstrap interval of the gain acc_full - acc_base reaches 0: no recovery (the gain is
  within the noise of these problems); the note gives the gain, its interval and the number of problems.
- otherwise: the recovery and its 95% interval, from the same resamples (those few whose own gain is not
  positive have no recovery and are left out).

A single accuracy's interval (no pairing) is the Wilson score interval (`wilson_interval`).

Which problems two models disagree on (`mcnemar`): each problem counts as solved by a model when at least
half of its samples are graded correct (with one sample: when it is); the problems only the second model
solves are "gained", those only the first solves "lost", and McNemar's exact test (McNemar 1947; the exact
binomial form, Fagerland, Lydersen & Laake 2013) gives the two-sided chance of a split at least this
uneven when neither model is better: p = min(1, 2 P[Binomial(gained + lost, 1/2) <= min(gained, lost)]).

Math only: arrays in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
_CHUNK = 250


@dataclass(frozen=True)
class RecoveryEstimate:
    """The recovery of one variant against one (base, full) pair, with its evidence."""

    gain: float
    """acc_full - acc_base."""
    gain_low: float
    gain_high: float
    """The 95% paired-bootstrap interval of the gain."""
    recovery: float | None
    """None when the gain is not real (see `note`)."""
    recovery_low: float | None
    recovery_high: float | None
    """The 95% paired-bootstrap interval of the recovery (None with it)."""
    note: str | None
    """Why there is no recovery, or None."""


def paired_resamples(n: int, resamples: int = RESAMPLES, seed: int = 0):
    """Index arrays (chunks of resamples x n) drawing n problems with replacement, seeded."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _CHUNK):
        yield rng.integers(0, n, size=(min(_CHUNK, resamples - start), n))


def recovery_estimate(
    base: np.ndarray, full: np.ndarray, variant: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> RecoveryEstimate:
    """The recovery of `variant` (per-problem scores, aligned with `base` and `full`) under the rule above."""
    base, full, variant = (np.asarray(a, dtype=np.float64) for a in (base, full, variant))
    if not (base.shape == full.shape == variant.shape) or base.ndim != 1 or base.size == 0:
        raise ValueError(
            f"per-problem scores must be equal-length vectors, got {base.shape}, {full.shape}, {variant.shape}"
        )
    gain = float(full.mean() - base.mean())
    gains, ratios = [], []
    for idx in paired_resamples(base.size, resamples, seed):
        g = full[idx].mean(axis=1) - base[idx].mean(axis=1)
        kept = variant[idx].mean(axis=1) - base[idx].mean(axis=1)
        gains.append(g)
        ratios.append(kept[g > 0] / g[g > 0])
    gain_low, gain_high = _interval(np.concatenate(gains))
    if gain <= 0:
        note = (
            f"no gain to recover: the full model is not better than the base ({full.mean():.3f} vs "
            f"{base.mean():.3f} on {base.size} problems)"
        )
        return RecoveryEstimate(gain, gain_low, gain_high, None, None, None, note)
    if gain_low <= 0:
        note = (
            f"the gain {gain:+.3f} is within noise: its 95% interval [{gain_low:+.3f}, {gain_high:+.3f}] over "
            f"{base.size} problems (paired bootstrap, {resamples} resamples) includes 0"
        )
        return RecoveryEstimate(gain, gain_low, gain_high, None, None, None, note)
    low, high = _interval(np.concatenate(ratios))
    recovery = float((variant.mean() - base.mean()) / gain)
    return RecoveryEstimate(gain, gain_low, gain_high, recovery, low, high, None)


def accuracy_interval(scores: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """The 95% bootstrap interval of a mean accuracy over problems (per-problem scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    means = [scores[idx].mean(axis=1) for idx in paired_resamples(scores.size, resamples, seed)]
    return _interval(np.concatenate(means))


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default): exact enough at any n, never outside
    [0, 1] (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal interval)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(
    a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a) - mean(b) for per-problem scores of two models on the same problems, with its 95%
    paired-bootstrap interval: (difference, low, high)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"per-problem scores must be equal-length vectors, got {a.shape} and {b.shape}")
    diffs = a - b
    means = np.concatenate([diffs[idx].mean(axis=1) for idx in paired_resamples(a.size, resamples, seed)])
    low, high = _interval(means)
    return float(diffs.mean()), low, high


def mean_difference(
    a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a) - mean(b) for two independent samples (e.g. per-step training rewards of two runs), with
    its 95% bootstrap interval (each sample resampled on its own): (difference, low, high)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValueError(f"two non-empty vectors are needed, got shapes {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    draws = a[rng.integers(0, a.size, (resamples, a.size))].mean(axis=1)
    draws -= b[rng.integers(0, b.size, (resamples, b.size))].mean(axis=1)
    low, high = _interval(draws)
    return float(a.mean() - b.mean()), low, high


def seed_interval(values) -> dict:
    """Mean, sample standard deviation and the 95% Student-t interval of the mean over independent runs
    (seeds): {"n", "mean", "sd", "low", "high"}; NaN values are left out, the interval is NaN below 2."""
    from scipy import stats as scipy_stats

    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "low": math.nan, "high": math.nan}
    mean = float(data.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "sd": math.nan, "low": math.nan, "high": math.nan}
    sd = float(data.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


@dataclass(frozen=True)
class McNemar:
    """Two models on the same problems, problem by problem (see the module's docstring)."""

    gained: int
    """Problems the second model solves and the first does not."""
    lost: int
    """Problems the first model solves and the second does not."""
    both: int
    """Problems both solve."""
    neither: int
    """Problems neither solves."""
    p: float
    """McNemar's exact two-sided p: 1 when they never disagree."""


def mcnemar(first: np.ndarray, second: np.ndarray) -> McNemar:
    """The paired table and McNemar's exact test of two models' per-problem scores (same problems, same order)."""
    a, b = np.asarray(first, dtype=float) >= 0.5, np.asarray(second, dtype=float) >= 0.5
    if a.shape != b.shape:
        raise ValueError(f"per-problem scores of different lengths: {a.shape} vs {b.shape}")
    gained, lost = int((b & ~a).sum()), int((a & ~b).sum())
    n, low = gained + lost, min(gained, lost)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n if n else 1.0
    return McNemar(gained, lost, int((a & b).sum()), int((~a & ~b).sum()), min(1.0, 2 * tail))
