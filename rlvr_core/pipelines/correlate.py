"""Which spectral metric tracks the held-out metric over a run: the `metric_correlations` view.

For a run with an analysed step and an ingested held-out metric, every per-step metric of
`Queries.step_metrics` (sigma1, rank-1 energy, stable rank, ||dW||_F, alpha of W and dW, u1's alignment
with the final step) is correlated over the steps where both exist (`math.correlate.spearman`: rho and a
permutation p-value), per tensor and per module kind (the median over layers at each step); and their
step-to-step changes likewise (`spearman_change`: a trend shared with training time cancels), with the
changes' p-values adjusted over each level's table (Benjamini-Hochberg: `p_adjusted`) and a `flag` for
series that are constant, or 1 at the last step by construction (that step is left out). Recomputed
whole after every analysis and every log ingestion of the run (`rlvr analyze`, `rlvr logs`), and by
`rlvr correlate RUN`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..cache import RUN_SCHEMAS, Cache
from ..math.correlate import benjamini_hochberg, spearman, spearman_of_changes

BY_CONSTRUCTION = ("cos_u1_final", "cos_v1_final")
"""Metrics equal to 1 at the run's last step by construction (their reference is that step): it is left out."""

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
    rows: list[dict] = []
    last = int(metrics["step"].max())

    def add(level: str, frame, key: dict) -> None:
        rows.append({"run": run, "test_metric": test[0], "level": level, **key,
                     **_correlations(frame, accuracy, key["metric"], last, permutations)})  # fmt: skip

    for (metric, target, tensor), frame in metrics.groupby(["metric", "target", "tensor"], sort=True):
        first = frame.iloc[0]
        layer = None if first["layer"] != first["layer"] else int(first["layer"])
        add("tensor", frame, {"metric": metric, "target": target, "module": first["module"], "layer": layer,
                              "tensor": tensor})  # fmt: skip
    medians = metrics.groupby(["metric", "target", "module", "step"], as_index=False)["value"].median()
    for (metric, target, module), frame in medians.groupby(["metric", "target", "module"], sort=True):
        add("module", frame, {"metric": metric, "target": target, "module": module, "layer": None, "tensor": None})
    for level in ("tensor", "module"):  # the false discovery rate over each level's table
        chosen = [r for r in rows if r["level"] == level]
        for r, adjusted in zip(chosen, benjamini_hochberg([r["p_change"] for r in chosen])):
            r["p_adjusted"] = None if not np.isfinite(adjusted) else float(adjusted)
    table = pa.Table.from_pylist(rows, schema=RUN_SCHEMAS["metric_correlations"])
    cache.write_run_tables(run, {"metric_correlations": table})
    return len(rows)


def _correlations(frame, accuracy: dict, metric: str, last: int, permutations: int) -> dict:
    """Levels and step-to-step changes of one series against the held-out metric, and its flag: `constant`
    (never ranked), or the last step left out where the metric is 1 there by construction."""
    frame = frame.sort_values("step")
    flag = None
    if metric in BY_CONSTRUCTION:
        frame = frame[frame["step"] != last]
        flag = "last step left out (1 by construction)"
    values = frame["value"].to_numpy(dtype=float)
    test = np.array([accuracy[s] for s in frame["step"]], dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size and np.ptp(finite) == 0:
        flag = "constant"
    level = spearman(values, test, permutations)
    change = spearman_of_changes(values, test, permutations)
    return {"n_steps": level.n, "spearman": level.rho, "p_value": level.p_value, "exact": level.exact,
            "spearman_change": change.rho, "p_change": change.p_value, "n_changes": change.n,
            "p_adjusted": None, "flag": flag}  # fmt: skip
