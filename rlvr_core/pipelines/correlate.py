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

Seeds of one experiment (runs `<family>-s<N>`, `Queries.seed_families`) are also compared with each other
at matched steps (`math.correlate.spearman_matched`, module kinds only): rows of level `MATCHED` in every
member's table, rewritten whenever any member's correlations are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..cache import RUN_SCHEMAS, Cache
from ..math.correlate import benjamini_hochberg, spearman, spearman_matched, spearman_of_changes

BY_CONSTRUCTION = ("cos_u1_final", "cos_v1_final")
"""Metrics equal to 1 at the run's last step by construction (their reference is that step): it is left out."""

MATCHED = "seeds at matched steps"
"""The `level` of rows that compare a seed family's runs with each other at the same steps: `spearman` is
rho of the within-step ranks, `p_value` its stratified permutation p, `n_steps` the (run, step) pairs,
`p_adjusted` the Benjamini-Hochberg adjustment over these rows; no change columns."""

PERMUTATIONS = 1999
"""Random orders behind a p-value above `math.correlate.EXACT_UP_TO` steps (p resolves to 1/2000)."""


def correlate_run(cache: Cache, run: str, permutations: int = PERMUTATIONS) -> int:
    """Rewrite the run's `metric_correlations`; returns how many rows (0: no held-out metric or no step)."""
    queries = cache.queries()
    summary = queries.run_summaries()
    test = summary.loc[summary["run"] == run, "test_metric"].dropna().tolist()
    if not test:
        return 0
    accuracy, metrics = _at_held_out_steps(queries, run, test[0])
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
    for (metric, target, module), frame in _module_medians(metrics).groupby(["metric", "target", "module"], sort=True):
        add("module", frame, {"metric": metric, "target": target, "module": module, "layer": None, "tensor": None})
    for level in ("tensor", "module"):  # the false discovery rate over each level's table
        _adjust([r for r in rows if r["level"] == level], "p_change")
    _write(cache, run, rows)
    _correlate_family(cache, queries, summary.set_index("run")["test_metric"], run, permutations)
    return len(rows)


def _adjust(rows: list[dict], p_column: str) -> None:
    for r, adjusted in zip(rows, benjamini_hochberg([r[p_column] for r in rows]), strict=True):
        r["p_adjusted"] = None if not np.isfinite(adjusted) else float(adjusted)


def _write(cache: Cache, run: str, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=RUN_SCHEMAS["metric_correlations"])
    cache.write_run_tables(run, {"metric_correlations": table})


def _correlate_family(cache: Cache, queries, tests: pd.Series, run: str, permutations: int) -> None:
    """The `MATCHED` rows of `run`'s seed family (`tests`: each run's held-out metric), written into every
    member's table that exists."""
    family: list[str] = next((runs for runs in queries.seed_families().values() if run in runs), [])
    test = tests.get(run)
    members = [m for m in family if tests.get(m) == test]
    if len(members) < 3 or not isinstance(test, str):
        return
    frames = [_family_series(queries, m, test) for m in members]
    pooled = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    found = []
    for (metric, target, module), frame in pooled.groupby(["metric", "target", "module"], sort=True):
        c = spearman_matched(frame["value"], frame["accuracy"], frame["step"], permutations)
        flag = "constant" if not np.isfinite(c.rho) and c.n else None
        found.append({"test_metric": test, "level": MATCHED, "metric": metric, "target": target, "module": module,
                      "layer": None, "tensor": None, "n_steps": c.n, "spearman": c.rho, "p_value": c.p_value,
                      "exact": False, "spearman_change": None, "p_change": None, "n_changes": None,
                      "p_adjusted": None, "flag": flag})  # fmt: skip
    _adjust(found, "p_value")
    for member in members:
        table = cache.read_run(member, "metric_correlations")
        if table is not None:
            kept = [r for r in table.to_pylist() if r["level"] != MATCHED]
            _write(cache, member, kept + [{"run": member, **r} for r in found])


def _at_held_out_steps(queries, run: str, test: str) -> tuple[dict[int, float], pd.DataFrame]:
    """The held-out metric `test` by step, and the run's step metrics at those steps."""
    series = queries.metric_series([run], [test])
    accuracy = dict(zip(series["step"].astype(int), series["value"], strict=True))
    metrics = queries.step_metrics(run)
    return accuracy, metrics[metrics["step"].isin(list(accuracy))]


def _module_medians(metrics: pd.DataFrame) -> pd.DataFrame:
    """metric, target, module, step, value: the median over layers (and experts) of each module kind."""
    return metrics.groupby(["metric", "target", "module", "step"], as_index=False)["value"].median()


def _family_series(queries, run: str, test: str) -> pd.DataFrame:
    """One seed's module medians with its accuracy at each step; a by-construction metric's last step left
    out."""
    accuracy, metrics = _at_held_out_steps(queries, run, test)
    if metrics.empty:
        return metrics
    last = int(metrics["step"].max())
    metrics = metrics[~(metrics["metric"].isin(BY_CONSTRUCTION) & (metrics["step"] == last))]
    medians = _module_medians(metrics)
    return medians.assign(accuracy=[accuracy[int(s)] for s in medians["step"]])


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
