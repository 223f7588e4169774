"""The implicit-reward-overfitting monitor (`rlvr_core.math.monitor`) on constructed logs: the rule flags
a reward that rises while the test is flat, at the right step, and never flags without enough data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlvr_core.math.monitor import CLEAR, FLAG, NOT_ENOUGH, MonitorRule, monitor, trend

STEPS = np.arange(1, 301)
EVALS = np.arange(10, 301, 10)


def _log(test_curve, seed: int = 0, noise: float = 0.004):
    rng = np.random.default_rng(seed)
    reward = (STEPS, 0.2 + 0.002 * STEPS + rng.normal(0, 0.03, STEPS.size))
    test = (EVALS, test_curve(EVALS) + rng.normal(0, noise, EVALS.size))
    return reward, test


def test_trend_is_the_ols_slope_with_a_student_t_interval() -> None:
    fit = trend([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.5])
    assert fit.slope == pytest.approx(1.15) and fit.n == 4
    assert fit.low < 1.15 < fit.high and fit.rising
    assert math.isnan(trend([1, 2], [1.0, 2.0]).slope)  # two points: no interval


@pytest.mark.parametrize("seed", range(8))
def test_reward_and_test_both_rising_is_never_flagged(seed) -> None:
    verdicts = monitor(*_log(lambda s: 0.4 + 0.001 * s, seed))
    assert {v.status for v in verdicts} <= {CLEAR, NOT_ENOUGH}
    assert verdicts[-1].status == CLEAR and verdicts[-1].reward.rising and verdicts[-1].test.rising


@pytest.mark.parametrize("seed", range(8))
def test_a_test_that_stops_rising_is_flagged_once_the_window_has_only_the_plateau(seed) -> None:
    verdicts = monitor(*_log(lambda s: 0.4 + 0.001 * np.minimum(s, 100), seed))
    flagged = [v.step for v in verdicts if v.status == FLAG]
    assert flagged and 120 <= flagged[0] <= 160, flagged  # the window (6 evaluations) is all plateau at 150
    late = [v.status == FLAG for v in verdicts if v.step >= 160]
    assert sum(late) >= 0.8 * len(late)  # a noise-only plateau looks rising by chance in ~5% of windows
    flags = [v for v in verdicts if v.status == FLAG]
    assert flags[0].since == flags[0].step and all(v.since is not None and v.since <= v.step for v in flags)
    assert verdicts[-1].window_start == 250
    assert all(v.status != FLAG for v in verdicts if v.step <= 100)


def test_short_or_missing_test_series_are_not_enough_data() -> None:
    reward, _ = _log(lambda s: 0.4 + 0 * s)
    short = (EVALS[-3:], np.full(3, 0.5))
    assert {v.status for v in monitor(reward, short)} == {NOT_ENOUGH}
    missing = monitor(reward, (np.array([]), np.array([])))
    assert [v.status for v in missing] == [NOT_ENOUGH] and missing[0].step == 300
    assert monitor((np.array([]), np.array([])), (np.array([]), np.array([]))) == []
    few = monitor(reward, (EVALS[:5], np.full(5, 0.5)), MonitorRule(evaluations=6))
    assert {v.status for v in few} == {NOT_ENOUGH}  # five evaluations: the window is not full
    thin = monitor((STEPS[::20], reward[1][::20]), (EVALS, np.full(EVALS.size, 0.5)))
    assert {v.status for v in thin} == {NOT_ENOUGH}  # 3 reward values per window


def test_a_widening_gap_between_pool_and_test_is_flagged() -> None:
    reward, test = _log(lambda s: 0.5 + 0 * s)
    rng = np.random.default_rng(1)
    pool = (EVALS, 0.5 + 0.002 * EVALS + rng.normal(0, 0.004, EVALS.size))
    last = monitor(reward, test, pool=pool)[-1]
    assert last.gap_widening and last.gap is not None and last.gap.rising
    assert not monitor(reward, test, pool=test)[-1].gap_widening


def _write_log(path, test_curve, pool: bool = False) -> None:
    """A verl-style JSONL log (verl 0.9.1's file logger: {"step": N, "data": {...}}) with the demo's names."""
    import json

    reward, test = _log(test_curve)
    rows = {int(s): {"reward": float(v)} for s, v in zip(*reward, strict=True)}
    for s, v in zip(*test, strict=True):
        rows[int(s)]["eval_accuracy"] = float(v)
        if pool:
            rows[int(s)]["eval_pool_accuracy"] = float(v) + 0.002 * int(s)
    path.write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in sorted(rows.items())))


def test_rlvr_logs_stores_the_monitor_and_rlvr_runs_shows_it(tmp_path, cli) -> None:
    import json

    from rlvr_core.cache import Cache

    _write_log(tmp_path / "stalls.jsonl", lambda s: 0.4 + 0.001 * np.minimum(s, 100), pool=True)
    _write_log(tmp_path / "rises.jsonl", lambda s: 0.4 + 0.001 * s)
    cache = tmp_path / "cache"
    for run in ("stalls", "rises"):
        assert cli("logs", tmp_path / f"{run}.jsonl", "--run", run, "--cache", cache)[0] == 0
    verdicts = Cache(cache).queries().decoupling(["stalls", "rises"])
    stalls = verdicts[verdicts.run == "stalls"]
    assert list(stalls.step) == list(EVALS) and stalls.iloc[-1].status == FLAG
    assert stalls.iloc[-1].test_metric == "eval_accuracy" and stalls.iloc[-1].pool_metric == "eval_pool_accuracy"
    assert bool(stalls.iloc[-1].gap_widening) and stalls.iloc[-1].level == 0.95
    assert verdicts[verdicts.run == "rises"].iloc[-1].status == CLEAR
    rc, out, _ = cli("runs", "--cache", cache)
    since = int(stalls.iloc[-1].since)
    assert rc == 0 and f"monitor at step 300: {FLAG} (since step {since})" in out
    assert "monitor at step 300: clear" in out
    entries = {e["run"]: e for e in json.loads(cli("runs", "--cache", cache, "--json")[1])}
    assert entries["stalls"]["monitor"] == {"status": FLAG, "since": since, "step": 300}


def test_the_reward_page_shows_the_monitor_banner(tmp_path, cli, monkeypatch) -> None:
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    _write_log(tmp_path / "stalls.jsonl", lambda s: 0.4 + 0.001 * np.minimum(s, 100))
    _write_log(tmp_path / "rises.jsonl", lambda s: 0.4 + 0.001 * s)
    cache = tmp_path / "cache"
    for run in ("stalls", "rises"):
        assert cli("logs", tmp_path / f"{run}.jsonl", "--run", run, "--cache", cache)[0] == 0
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/reward.py").run()
    assert not at.exception
    warnings = [w.value.replace("\\", "") for w in at.warning]  # user text is escaped Markdown
    assert any(w.startswith("stalls, steps 250-300: reward rising, test flat or falling since step") for w in warnings)
    assert any(i.value.replace("\\", "").startswith("rises, steps 250-300: clear") for i in at.info)
    assert any("eval_accuracy -0.007 per 100 steps (95%: -0.018 to +0.003)" in w for w in warnings)


def test_rlvr_watch_says_when_the_flag_first_rises_and_clears(tmp_path) -> None:
    from rlvr_core.pipelines.watch import WatchConfig, poll, watch

    log = tmp_path / "log.jsonl"
    _write_log(log, lambda s: 0.4 + 0.001 * np.minimum(s, 100))
    (tmp_path / "run").mkdir()
    lines: list[str] = []
    config = WatchConfig(
        run_dir=tmp_path / "run", base=tmp_path, run="live", cache=tmp_path / "c", log=log, settle=0, polls=1
    )
    state = watch(config, lambda: False, lines.append)
    assert any(line.startswith(f"monitor: {FLAG} since step") and "eval_accuracy" in line for line in lines), lines
    raised = state.flag_since
    assert raised is not None
    poll(config, state, lambda: False, lines.append)  # the log unchanged: nothing more to say
    assert sum("monitor:" in line for line in lines) == 1
    _write_log(log, lambda s: 0.4 + 0.001 * s)  # the trainer's log now shows the test rising after all
    state.log_stamp = None
    poll(config, state, lambda: False, lines.append)
    assert lines[-1] == f"monitor: the flag raised at step {raised} has cleared" and state.flag_since is None


def test_a_clear_verdict_with_a_widening_gap_is_not_called_clear() -> None:
    """The banner's verdict and its sentences agree: a widening pool - test gap is a warning, not "clear"."""
    from rlvr_dashboard.charts import monitor_banner

    row = {"window_start": 250, "step": 300, "status": "clear", "gap_widening": True, "reward_metric": "reward",
           "test_metric": "eval_accuracy", "pool_metric": "eval_pool_accuracy"}  # fmt: skip
    for part in ("reward", "test", "gap"):
        row |= {f"{part}_slope": 0.0005, f"{part}_low": 0.0002, f"{part}_high": 0.0009}
    flagged, text = monitor_banner("r", row)
    assert flagged and "clear" not in text and "is widening: +0.050 per 100 steps (95%: +0.020 to +0.090)" in text
    flagged, text = monitor_banner("r", row | {"gap_widening": False})
    assert not flagged and text.startswith("r, steps 250-300: clear: reward +0.050 per 100 steps")
