"""Which spectral metric tracks the held-out metric over a run: the `metric_correlations` view.

For a run with an analysed step and an ingested held-out metric, every per-step metric of
`Queries.step_metrics` (sigma1, rank-1 energy, stable rank, ||dW||_F, alpha of W and dW, u1's alignment
with the final step) is correlated over the steps where both exist (`math.correlate.spearman`: rho and a
permutation p-value), per tensor and per module kind (the median over layers at each step). Recomputed
whole after every analysis and every log ingestion of the run (`rlvr analyze`, `rlvr logs`), and by
`rlvr correlate RUN`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..cache import RUN_SCHEMAS, Cache
from ..math.correlate import spearman

PERMUTATIONS = 1999
"""Random orders behind a p-value above `math.correlate.EXACT_UP_TO` steps (p resolves to 1/2000)."""


def correlate_run(cache: Cache, run: str, permutations: int = PERMUTATIONS) -> int:
    """Rewrite the run's `metric_correlations`; returns how many rows (0: no held-out metric or no step)."""
    queries = cache.queries()
    summary = queries.run_summaries()
    test = summary.loc[summary["run"] == run, "test_metric"].dropna().tolist()
    if not test:
        return 0
    series = queries.metric_series([run], test[:1])
    accuracy = dict(zip(series["step"].astype(int), series["value"], strict=True))
    metrics = queries.step_metrics(run)
    metrics = metrics[metrics["step"].isin(list(accuracy))]
    if metrics.empty:
        return 0
    rows = []

    def add(level: str, frame, key: dict) -> None:
        frame = frame.sort_values("step")
        found = spearman(frame["value"].to_numpy(), np.array([accuracy[s] for s in frame["step"]]), permutations)
        rows.append(
            {"run": run, "test_metric": test[0], "level": level, **key, "n_steps": found.n,
             "spearman": found.rho, "p_value": found.p_value, "exact": found.exact}
        )  # fmt: skip

    for (metric, target, tensor), frame in metrics.groupby(["metric", "target", "tensor"], sort=True):
        first = frame.iloc[0]
        layer = None if first["layer"] != first["layer"] else int(first["layer"])
        add("tensor", frame, {"metric": metric, "target": target, "module": first["module"], "layer": layer,
                              "tensor": tensor})  # fmt: skip
    medians = metrics.groupby(["metric", "target", "module", "step"], as_index=False)["value"].median()
    for (metric, target, module), frame in medians.groupby(["metric", "target", "module"], sort=True):
        add("module", frame, {"metric": metric, "target": target, "module": module, "layer": None, "tensor": None})
    table = pa.Table.from_pylist(rows, schema=RUN_SCHEMAS["metric_correlations"])
    cache.write_run_tables(run, {"metric_correlations": table})
    return len(rows)
