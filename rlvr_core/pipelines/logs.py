"""`rlvr logs`: a training log into the cache. Parses it with `readers.trainlog` and writes the run's
`metrics` and `run_summary` views (`Cache.write_run_tables`, atomic). Used by `rlvr logs` and the demo."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..cache import Cache, check_run_name
from ..readers.trainlog import TrainingLog, pick_metrics, read_log, summarize


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
    target.write_run_tables(run, {"metrics": metrics, "run_summary": pa.Table.from_pylist([summary])})
    return log, summary
