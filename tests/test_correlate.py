"""Which spectral metric tracks held-out accuracy: Spearman's rho over steps with a permutation p-value
(`math.correlate`), and the `metric_correlations` view written by `rlvr analyze` / `rlvr logs` /
`rlvr correlate` on a real planted run (sigma1 of every update grows with the step) against a held-out
metric that rises with the step (rho = 1) and one that is independent noise (not significant)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlvr_core.cache import Cache
from rlvr_core.fixtures import ModelShape, build_run
from rlvr_core.math.correlate import smallest_p, spearman


def test_spearman_with_exact_and_monte_carlo_permutation_p_values() -> None:
    steps = np.arange(1.0, 7.0)
    perfect = spearman(steps**2, np.log(steps))  # any monotone relation: rho = 1
    assert perfect.rho == pytest.approx(1) and perfect.exact and perfect.p_value == pytest.approx(smallest_p(6))
    assert spearman(steps, -steps).rho == pytest.approx(-1)
    assert math.isnan(spearman(steps, np.ones(6)).rho) and math.isnan(spearman(steps[:2], steps[:2]).p_value)
    ties = spearman(np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert ties.rho == pytest.approx(0.9486832980505138)  # scipy.stats.spearmanr's value, ties at mean ranks
    rng = np.random.default_rng(3)
    many = np.arange(40.0)
    strong = spearman(many, many + rng.normal(0, 3, 40), permutations=999)
    assert not strong.exact and strong.rho > 0.9 and strong.p_value == pytest.approx(1 / 1000)
    noise = [spearman(many, rng.normal(size=40), permutations=999).p_value for _ in range(40)]
    assert sum(p < 0.05 for p in noise) <= 6 and min(noise) > 0.001  # independent noise: ~5% below 0.05 by chance


@pytest.mark.slow
def test_the_metric_correlations_view_on_a_planted_run(tmp_path, cli) -> None:
    steps = (10, 20, 30, 40, 50, 60)
    fx = build_run(tmp_path / "fx", ModelShape(n_layers=2), steps=steps, dtype="fp32")
    cache = tmp_path / "cache"
    assert cli("analyze", str(fx.run_dir), "--base", str(fx.base_dir), "--cache", cache, "--quiet")[0] == 0
    rng = np.random.default_rng(7)
    for run, test in (("rises", [0.1 + 0.01 * s for s in steps]), ("noise", list(rng.permutation(6) / 10))):
        log = tmp_path / f"{run}.jsonl"
        log.write_text("".join(json.dumps({"step": s, "data": {"reward": 0.5 + 0.001 * s, "eval_accuracy": t}}) + "\n"
                               for s, t in zip(steps, test, strict=True)))  # fmt: skip
        assert cli("logs", str(log), "--run", "run", "--cache", cache)[0] == 0  # recomputes the correlations
        rows = Cache(cache).queries().metric_correlations("run")
        sigma = rows[(rows.metric == "sigma1") & (rows.level == "module")]
        assert len(sigma) == 7 and (sigma.n_steps == 6).all() and sigma.exact.all()
        if run == "rises":
            assert np.allclose(sigma.spearman, 1) and (sigma.p_value < 0.01).all()
        else:
            assert (sigma.p_value > 0.05).all(), sigma[["module", "spearman", "p_value"]]
        assert (sigma.n_changes == 5).all() and sigma.p_adjusted.notna().any()
    cos = rows[(rows.metric == "cos_u1_final") & (rows.level == "module")]
    assert (cos.n_steps == 5).all() and (cos.flag == "last step left out (1 by construction)").all()
    assert {"alpha", "rank1_energy", "stable_rank", "fro_norm", "cos_u1_final"} <= set(rows.metric)
    assert set(rows[rows.metric == "alpha"].target) == {"W", "dW"}
    code, out, _ = cli("correlate", "run", "--top", "3", "--cache", cache)
    assert code == 0 and "correlations with eval_accuracy" in out and len(out.strip().splitlines()) == 4


def test_changes_not_levels_rank_the_metrics_and_p_values_are_adjusted() -> None:
    """A metric that only drifts with training time tracks a drifting accuracy in levels (rho = 1) but not in
    its changes; one that moves when the accuracy moves does both. BH equals scipy's own adjustment."""
    from scipy.stats import false_discovery_control

    from rlvr_core.math.correlate import benjamini_hochberg, spearman_of_changes

    rng = np.random.default_rng(3)
    steps = np.arange(1.0, 41.0)
    accuracy = 0.01 * steps + rng.normal(0, 0.05, steps.size)  # a trend plus step-to-step noise
    trend = steps**1.5  # time alone
    tracker = accuracy + rng.normal(0, 0.005, steps.size)  # moves with the accuracy
    assert spearman(trend, accuracy, 999).rho > 0.8  # levels: both look like they "track"
    drift, follows = spearman_of_changes(trend, accuracy, 999), spearman_of_changes(tracker, accuracy, 999)
    assert drift.p_value > 0.05 and follows.rho > 0.8 and follows.p_value < 0.01 and follows.n == 39
    p = np.array([0.01, 0.04, 0.03, 0.2, float("nan"), 0.001])
    adjusted = benjamini_hochberg(p)
    keep = np.isfinite(p)
    assert np.allclose(adjusted[keep], false_discovery_control(p[keep])) and np.isnan(adjusted[4])


def test_seeds_are_compared_at_matched_steps_where_training_time_cannot_count(tmp_path, cli) -> None:
    """Three seeds of one experiment (sigma1 of their updates scaled 1, 1.5, 2): every run's sigma1 and
    accuracy rise with the step (rho of levels 1 in each), but only the ordering of the runs within each step
    counts across seeds: accuracy offsets in sigma1's order give rho +1, in the reverse order rho -1."""
    from rlvr_core.math.correlate import spearman_matched
    from rlvr_core.pipelines.correlate import MATCHED

    steps = (10, 20, 30, 40)
    cache = tmp_path / "cache"
    for k, sigma in enumerate((1.0, 1.5, 2.0)):
        fx = build_run(tmp_path / f"fx{k}", ModelShape(n_layers=1), steps=steps, dtype="fp32", sigma=sigma)
        common = ("--base", str(fx.base_dir), "--cache", cache, "--quiet", "--no-fits", "--no-geometry")
        assert cli("analyze", str(fx.run_dir), "--run", f"exp-s{k}", *common)[0] == 0
    for sign in (1, -1):
        for k in range(3):
            log = tmp_path / f"s{k}.jsonl"
            data = [{"step": s, "data": {"reward": 0.5 + 0.001 * s, "eval_accuracy": 0.01 * s + sign * 0.05 * k}}
                    for s in steps]  # fmt: skip
            log.write_text("".join(json.dumps(d) + "\n" for d in data))
            assert cli("logs", str(log), "--run", f"exp-s{k}", "--cache", cache)[0] == 0
        for k in range(3):
            rows = Cache(cache).queries().metric_correlations(f"exp-s{k}")
            across = rows[rows.level == MATCHED]
            sigma1 = across[(across.metric == "sigma1") & (across.target == "dW")]
            assert len(sigma1) == 7 and (sigma1.n_steps == 12).all(), k  # 3 runs x 4 steps, per module kind
            assert np.allclose(sigma1.spearman, sign) and (sigma1.p_adjusted < 0.01).all()
            assert rows.level.tolist().index(MATCHED) > rows.level.tolist().index("module")
    trend = np.repeat(np.arange(6.0), 4)
    metric, accuracy = trend + np.tile([0.1, 0.2, 0.3, 0.4], 6), trend + np.tile([0.3, 0.1, 0.4, 0.2], 6)
    flat = spearman_matched(metric, accuracy, trend)
    assert spearman(metric, accuracy, 999).rho > 0.9 and flat.rho == pytest.approx(0) and flat.p_value > 0.5
    assert math.isnan(spearman_matched(trend, accuracy, trend).rho)  # no order among the seeds at any step
    code, out, _ = cli("correlate", "exp-s0", "--top", "2", "--cache", cache)
    assert code == 0 and "across the run's seeds at matched steps" in out
