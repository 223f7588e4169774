"""The implicit-reward-overfitting monitor: from a run's logged training reward and held-out metric, is the
reward still buying test accuracy?

The phenomenon (the seed paper's "implicit reward overfitting"; see also the generalisation-gap reading
of RLVR on a finite prompt pool): the training reward keeps climbing while the held-out accuracy stalls
or falls. The rule, at each step t where the held-out metric was logged:

1. The window is the last `evaluations` held-out evaluations up to t (default 6: the held-out metric is
   logged sparsely, so the window is counted in its points), from their first step s0 to t; the reward
   is taken over the same steps, [s0, t].
2. In it, fit a straight line (ordinary least squares) to the training reward against the step, and one
   to the held-out metric; each slope gets its two-sided `level` (95%) Student-t interval,
   slope ± t(n - 2) · se, se = sqrt(SSE / (n - 2) / Σ(step - mean step)²).
3. Fewer than `evaluations` held-out values up to t, or fewer than `min_reward_points` reward values in
   the window: "not enough data" (never a flag).
4. Flag "reward rising, test flat or falling" when the reward's interval lies above 0 (significantly
   rising) and the held-out slope's interval does not (its lower end ≤ 0: flat, falling, or too noisy to
   tell it is rising). Otherwise "clear".
5. Where the log also has a greedy accuracy on the training pool (the demo's `eval_pool_accuracy`), the
   gap pool − test at the steps where both were logged gets the same fit: "gap widening" when its
   interval lies above 0.

`since` is the first step of the current unbroken series of flags. The intervals treat the logged values
as independent noise around a line: per-step GRPO rewards are means over fresh batches, nearly so; a
smoothed (rolling-mean) log is not, and would make the intervals too narrow — pass the raw values.

Math only: arrays in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

FLAG, CLEAR, NOT_ENOUGH = "reward rising, test flat or falling", "clear", "not enough data"
"""The three statuses of a verdict."""


@dataclass(frozen=True, kw_only=True)
class MonitorRule:
    """The monitor's parameters (see the module docstring)."""

    evaluations: int = 6
    """Held-out evaluations in the trailing window (the window spans their steps)."""
    level: float = 0.95
    """Confidence level of the slope intervals."""
    min_reward_points: int = 10
    """Fewest reward values in the window for a verdict."""


@dataclass(frozen=True)
class Trend:
    """A fitted slope (per step) with its interval; NaN when fewer than 3 points."""

    slope: float
    low: float
    high: float
    n: int

    @property
    def rising(self) -> bool:
        """Significantly above 0."""
        return self.low > 0


@dataclass(frozen=True)
class Verdict:
    """The monitor at one step, with its evidence."""

    step: int
    status: str
    window_start: int
    reward: Trend
    test: Trend
    gap: Trend | None = None
    gap_widening: bool = False
    since: int | None = None


def trend(steps, values, level: float = 0.95) -> Trend:
    """OLS slope of `values` against `steps` and its Student-t interval (NaN values left out)."""
    from scipy import stats

    x, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    sxx = float(((x - x.mean()) ** 2).sum()) if n else 0.0
    if n < 3 or sxx == 0.0:
        return Trend(math.nan, math.nan, math.nan, n)
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
    residuals = y - y.mean() - slope * (x - x.mean())
    se = math.sqrt(float((residuals**2).sum()) / (n - 2) / sxx)
    half = float(stats.t.ppf(0.5 + level / 2, n - 2)) * se
    return Trend(slope, slope - half, slope + half, n)


def assess(reward: tuple, test: tuple, step: int, rule: MonitorRule, pool: tuple | None = None) -> Verdict:
    """The verdict at `step`; each series is (steps, values) arrays."""
    test_steps = np.asarray(test[0], dtype=np.float64)[np.isfinite(np.asarray(test[1], dtype=np.float64))]
    recent = np.sort(test_steps[test_steps <= step])[-rule.evaluations :]
    start = int(recent[0]) if recent.size else step

    def window(series: tuple) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.asarray(series[0], dtype=np.float64), np.asarray(series[1], dtype=np.float64)
        keep = (x >= start) & (x <= step) & np.isfinite(y)
        return x[keep], y[keep]

    test_x, test_y = window(test)
    reward_fit, test_fit = trend(*window(reward), rule.level), trend(test_x, test_y, rule.level)
    gap_fit = None
    if pool is not None:
        pool_x, pool_y = window(pool)
        shared, test_at, pool_at = np.intersect1d(test_x, pool_x, return_indices=True)
        gap_fit = trend(shared, pool_y[pool_at] - test_y[test_at], rule.level)
    if reward_fit.n < rule.min_reward_points or test_fit.n < rule.evaluations:
        status = NOT_ENOUGH
    else:
        status = FLAG if reward_fit.rising and not test_fit.rising else CLEAR
    widening = bool(gap_fit is not None and gap_fit.n >= rule.evaluations and gap_fit.rising)
    return Verdict(step, status, start, reward_fit, test_fit, gap_fit, widening)


def monitor(reward: tuple, test: tuple, rule: MonitorRule | None = None, pool: tuple | None = None) -> list[Verdict]:
    """The verdict at every step where the held-out metric was logged, in step order, with `since` set; a log
    without held-out values gets one "not enough data" verdict at its last reward step (none when empty)."""
    rule = rule or MonitorRule()
    verdicts, since = [], None
    steps = sorted({int(s) for s, v in zip(*test, strict=True) if np.isfinite(v)})
    if not steps and len(reward[0]):
        steps = [int(max(reward[0]))]
    for step in steps:
        verdict = assess(reward, test, step, rule, pool)
        since = (since if since is not None else step) if verdict.status == FLAG else None
        verdicts.append(replace(verdict, since=since))
    return verdicts
