"""Honest recovery: no recovery where there is no real gain (the full model is no better, or the gain is
within the noise of the problems), a recovery with its 95% paired-bootstrap interval otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from rlvr_core.math.stats import accuracy_interval, recovery_estimate


def _scores(p: float, n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_no_recovery_when_the_full_model_is_not_better():
    base = _scores(0.485, 200, 1)
    full = base.copy()
    full[np.flatnonzero(base)[:11]] = 0.0  # 0.430-ish: worse than the base
    est = recovery_estimate(base, full, _scores(0.46, 200, 2))
    assert est.recovery is None and est.recovery_low is None and est.gain < 0
    assert est.note.startswith("no gain to recover: the full model is not better than the base")


def test_no_recovery_when_the_gain_is_within_noise():
    base = _scores(0.5, 200, 3)
    full = base.copy()
    flips = np.random.default_rng(4).choice(200, 40, replace=False)
    full[flips] = 1 - full[flips]  # many changes both ways: a net gain of a few points
    full[np.flatnonzero(full == 0)[:3]] = 1.0
    est = recovery_estimate(base, full, base)
    assert est.gain > 0 and est.gain_low <= 0 < est.gain_high
    assert est.recovery is None and "within noise" in est.note and "200 problems" in est.note


def test_a_real_gain_gets_a_recovery_with_an_interval():
    base = _scores(0.3, 400, 5)
    full = np.maximum(base, _scores(0.6, 400, 6))  # about 0.72: a large, real gain
    variant = np.where(np.random.default_rng(7).random(400) < 0.5, full, base)  # keeps about half of it
    est = recovery_estimate(base, full, variant)
    assert est.note is None and est.gain_low > 0
    expected = (variant.mean() - base.mean()) / (full.mean() - base.mean())
    assert est.recovery == pytest.approx(expected)
    assert est.recovery_low < est.recovery < est.recovery_high and 0.3 < est.recovery < 0.7
    assert est.recovery_high - est.recovery_low < 0.3
    again = recovery_estimate(base, full, variant)  # seeded: the same interval every time
    assert (again.recovery_low, again.recovery_high) == (est.recovery_low, est.recovery_high)


def test_accuracy_interval_covers_the_mean():
    scores = _scores(0.6, 300, 8)
    low, high = accuracy_interval(scores)
    assert low < scores.mean() < high and 0.08 < high - low < 0.14
