"""`rlvr logs`: a training log into the cache. Parses it with `readers.trainlog` and writes the run's
`metrics`, `run_summary` and `decoupling` views (`Cache.write_run_tables`, atomic; `decoupling` is the
implicit-reward-overfitting monitor of `math.monitor` at each held-out step). Used by `rlvr logs` and the
demo."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..cache import Cache, check_run_name
from ..cache.schemas import RUN_SCHEMAS
from ..math.monitor import MonitorRule, Trend, monitor
from ..readers.log_metrics import POOL_CANDIDATES, first_match
from ..readers.trainlog import TrainingLog, pick_metrics, read_log, summarize
from .correlate import correlate_run


def ingest_log(
    cache: Path | Cache, run: str, path: str | Path, reward: str | None = None, test: str | None = None
) -> tuple[TrainingLog, dict]:
    """Store every numeric value of the log at `path` under `run`; returns the log and its summary."""
    check_run_name(run)
    log = read_log(path)
    reward, test = pick_metrics(log, reward, test)
    summary = {"run": run, **summarize(log, reward, test)}
    n = len(log.records)
    metrics = pa.table(
        {
            "run": [run] * n,
            "step": [r[0] for r in log.records],
            "name": [r[1] for r in log.records],
            "value": [r[2] for r in log.records],
            "source": [log.format] * n,
        }
    )
    target = cache if isinstance(cache, Cache) else Cache(cache)
    tables = {"metrics": metrics, "run_summary": pa.Table.from_pylist([summary])}
    tables["decoupling"] = pa.Table.from_pylist(
        decoupling_rows(log, run, reward, test), schema=RUN_SCHEMAS["decoupling"]
    )
    target.write_run_tables(run, tables)
    correlate_run(target, run)
    return log, summary


def decoupling_rows(log: TrainingLog, run: str, reward: str, test: str | None, rule: MonitorRule | None = None):
    """The monitor's verdicts as rows of the `decoupling` view (none without a test metric)."""
    rule = rule or MonitorRule()
    if test is None:
        return []
    pool_name = first_match(log.names(), POOL_CANDIDATES)

    def series(name: str) -> tuple[list[int], list[float]]:
        values = log.series(name)
        return list(values), list(values.values())

    pool = series(pool_name) if pool_name else None
    rows = []
    for v in monitor(series(reward), series(test), rule, pool):
        gap = v.gap or Trend(float("nan"), float("nan"), float("nan"), 0)
        rows.append(
            {
                "run": run,
                "step": v.step,
                "status": v.status,
                "since": v.since,
                "window_start": v.window_start,
                "reward_metric": reward,
                "test_metric": test,
                "level": rule.level,
                **_trend("reward", v.reward),
                **_trend("test", v.test),
                "pool_metric": pool_name,
                **{f"gap_{k}": getattr(gap, k) for k in ("slope", "low", "high")},
                "gap_widening": v.gap_widening,
            }
        )
    return rows


def _trend(prefix: str, trend: Trend) -> dict:
    values = {f"{prefix}_{k}": getattr(trend, k) for k in ("slope", "low", "high")}
    return {**values, f"n_{prefix}": trend.n}
