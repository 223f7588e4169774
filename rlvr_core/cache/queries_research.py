"""The named queries of the research pages beyond the paper: predictions from early steps (`rlvr predict`),
which spectral metric tracks accuracy (`metric_correlations`), several runs on one chart, and why an alpha
chart has no point at a step (`alpha_gaps`). A part of `Queries` (its base class),
kept in its own file; the same rules: SQL only here, parameters bound, DataFrames out.

May import: `rlvr_core.errors` and this package. Never torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb

from .views import ALIGNMENT_MEASURES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_STEP_METRICS_SQL = (
    "WITH l AS (SELECT run, step, tensor, layer, module, target, spectral_norm, rank1_energy, stable_rank, "
    "fro_norm FROM layers WHERE run = $run AND step > 0) "
    "SELECT step, tensor, layer, module, 'sigma1' AS metric, target, spectral_norm AS value FROM l WHERE target = 'dW' "
    "UNION ALL SELECT step, tensor, layer, module, 'rank1_energy', target, rank1_energy FROM l WHERE target = 'dW' "
    "UNION ALL SELECT step, tensor, layer, module, 'stable_rank', target, stable_rank FROM l WHERE target = 'dW' "
    "UNION ALL SELECT step, tensor, layer, module, 'fro_norm', target, fro_norm FROM l WHERE target = 'dW' "
    "UNION ALL SELECT f.step, f.tensor, l.layer, l.module, 'alpha', f.target, f.alpha FROM fits f "
    "JOIN l ON f.run = l.run AND f.step = l.step AND f.tensor = l.tensor AND f.target = l.target "
    "UNION ALL SELECT step, tensor, layer, module, 'cos_u1_final', 'dW', cos_u_final FROM alignment "
    "WHERE run = $run AND step > 0"
)
"""Every per-step metric `metric_correlations` correlates with accuracy, one row per (step, tensor, metric,
target): sigma1, rank-1 energy, stable rank and ||.||_F of dW, alpha of W and of dW, |cos(u1, u1 final)|."""


OVERLAY_MEASURES: dict[str, str] = {
    **{m: "SELECT run, step, tensor, {m} AS value FROM layers WHERE target = 'dW'" for m in
       ("rank1_energy", "stable_rank", "spectral_norm", "fro_norm")},
    "alpha": "SELECT run, step, tensor, alpha AS value FROM fits WHERE target = 'W' AND fit_status = 'ok'",
    **{m: "SELECT run, step, tensor, {m} AS value FROM update_geometry" for m in
       ("unchanged_share", "within_e6", "numerical_rank_share", "rotation_u_k8", "rotation_v_k8", "drift_all",
        "off_principal_k8", "value_share")},
}  # fmt: skip
"""The per-tensor measures several runs can be overlaid on (`layer_measure_across_runs`): dW's sizes and
shape (`layers`), W's alpha (`fits`), the update geometry (`update_geometry`); each a SELECT of run, step,
tensor, value."""


class ResearchQueries:
    """Queries over the `predictions` and `metric_correlations` views and the per-step metrics."""

    con: duckdb.DuckDBPyConnection

    def _df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def predictions(self, run: str) -> pd.DataFrame:
        """Every row of the `predictions` view of `run` (rank-k extrapolation scores), by from_step, to_step."""
        return self._df(
            "SELECT * FROM predictions WHERE run = ? ORDER BY from_step, to_step, rank, layer, module", [run]
        )

    def prediction_by_module(self, run: str) -> pd.DataFrame:
        """from_step, to_step, rank, module and the medians over layers of each score and fit of `run`'s
        predictions."""
        measures = ("cos_u1", "sigma_pred", "sigma_real", "sigma_error", "fro_error", "fit_slope", "fit_intercept")
        medians = ", ".join(f"median({m}) AS {m}" for m in measures)
        return self._df(
            f"SELECT from_step, to_step, rank, module, {medians}, count(*) AS tensors FROM predictions "
            "WHERE run = ? GROUP BY from_step, to_step, rank, module ORDER BY from_step, to_step, rank, module",
            [run],
        )

    def step_metrics(self, run: str) -> pd.DataFrame:
        """step, tensor, layer, module, metric, target, value of every trained step of `run` (`_STEP_METRICS_SQL`)."""
        return self._df(_STEP_METRICS_SQL.replace("$run", "?"), [run] * 2)

    def alignment_chance(self, run: str, measure: str, module: str | None = None) -> float | None:
        """What random directions give for one alignment measure (the median over the run's tensors, or one
        module kind's): E|cos| of random unit vectors of u's (or v's) length, or k/m for the overlaps. None
        for a cache written before these columns."""
        if measure not in ALIGNMENT_MEASURES:
            raise ValueError(f"not an alignment measure: {measure!r}")
        column = measure
        chance = "chance_overlap" if column.startswith("overlap") else f"chance_cos_{column.split('_')[1]}"
        try:
            found = self.con.execute(
                f"SELECT median({chance}) FROM alignment WHERE run = ? AND (? IS NULL OR module = ?)",
                [run, module, module],
            ).fetchone()
        except duckdb.Error:
            return None
        return None if found is None or found[0] is None else float(found[0])

    def claims(self, run: str) -> pd.DataFrame:
        """The claims board of `run` (`claims` view), in the board's order."""
        return self._df("SELECT * FROM claims WHERE run = ?", [run])  # one file per run: in its order

    def chance_levels(self, run: str, measure: str) -> pd.DataFrame:
        """rows, cols, chance, chance_low, chance_high of one shape-only measure for each of the run's
        update shapes (`chance_levels` view; empty before the run's claims board is built)."""
        return self._df(
            "SELECT rows, cols, chance, chance_low, chance_high FROM chance_levels WHERE run = ? AND measure = ? "
            "ORDER BY rows, cols",
            [run, measure],
        )

    def layer_measure_across_runs(self, runs: list[str], measure: str, module: str, step: int | None = None):
        """run, step, layer, rows, cols, value, chance, chance_low, chance_high: one measure (`OVERLAY_MEASURES`)
        per layer of one module kind (the median over a layer's experts) for each of `runs`, at `step` or else
        at each run's last analysed step holding it (the base, step 0, only for W's alpha); chance: what a
        Gaussian matrix of the layer's shape gives (`chance_levels`; NULL where the run has none)."""
        if measure not in OVERLAY_MEASURES:
            raise ValueError(f"not a per-layer measure: {measure!r} (one of {', '.join(OVERLAY_MEASURES)})")
        source = OVERLAY_MEASURES[measure].format(m=measure)
        return self._df(
            f"WITH v AS (SELECT v.run, v.step, t.layer, t.shape[1] AS rows, t.shape[2] AS cols, v.value "
            f"FROM ({source}) v JOIN tensors t USING (run, step, tensor) WHERE list_contains(?, v.run) "
            "AND t.module = ? AND (? IS NULL OR v.step = ?) AND (v.step > 0 OR ? = 'alpha')), "
            "last AS (SELECT run, max(step) AS step FROM v GROUP BY run), "
            "per AS (SELECT run, step, layer, any_value(rows) AS rows, any_value(cols) AS cols, "
            "median(value) AS value FROM v JOIN last USING (run, step) GROUP BY run, step, layer) "
            "SELECT per.*, c.chance, c.chance_low, c.chance_high FROM per LEFT JOIN chance_levels c "
            "ON c.run = per.run AND c.rows = per.rows AND c.cols = per.cols AND c.measure = ? "
            "ORDER BY per.run, per.layer",
            [runs, module, step, step, measure, measure],
        )

    def chance_band(self, run: str, measure: str, module: str | None = None) -> tuple[float, float, float] | None:
        """(mean, low, high) of what a Gaussian matrix gives for `measure` over the run's shapes (or one module
        kind's): the median of the shapes' means, the lowest low, the highest high; None without a board."""
        found = self.con.execute(
            "SELECT median(c.chance), min(c.chance_low), max(c.chance_high) FROM chance_levels c "
            "WHERE c.run = ? AND c.measure = ? AND (? IS NULL OR EXISTS (SELECT 1 FROM tensors t WHERE "
            "t.run = c.run AND t.module = ? AND t.shape[1] = c.rows AND t.shape[2] = c.cols))",
            [run, measure, module, module],
        ).fetchone()
        return None if found is None or found[0] is None else (float(found[0]), float(found[1]), float(found[2]))

    def shared_steps(self, runs: list[str]) -> list[int]:
        """The trained steps (not the base) every one of `runs` has analysed (`layers`), ascending."""
        found = self.con.execute(
            "SELECT step FROM layers WHERE list_contains(?, run) AND step > 0 GROUP BY step "
            "HAVING count(DISTINCT run) = len(?) ORDER BY step",
            [runs, runs],
        ).fetchall()
        return [int(r[0]) for r in found]

    def claims_runs(self) -> list[str]:
        """Runs with a claims board."""
        return [r[0] for r in self.con.execute("SELECT DISTINCT run FROM claims ORDER BY run").fetchall()]

    def metric_correlations(self, run: str) -> pd.DataFrame:
        """The `metric_correlations` rows of `run`: per module kind, then across its seeds at matched steps,
        then per tensor; each ranked by its adjusted p-value (constant series last), then |rho|."""
        return self._df(
            "SELECT * FROM metric_correlations WHERE run = ? "
            "ORDER BY level = 'module' DESC, level = 'tensor', flag = 'constant' NULLS FIRST, p_adjusted NULLS "
            "LAST, abs(coalesce(spearman_change, spearman)) DESC NULLS LAST",
            [run],
        )

    def correlated_runs(self) -> list[str]:
        """Runs with a `metric_correlations` row."""
        return [r[0] for r in self.con.execute("SELECT DISTINCT run FROM metric_correlations ORDER BY run").fetchall()]

    def metric_vs_test(self, run: str, metric: str, target: str, module: str) -> pd.DataFrame:
        """step, value (the median over layers of one metric of one module kind) and test (the held-out
        metric the correlations used) at each step where both exist."""
        return self._df(
            f"WITH vals AS ({_STEP_METRICS_SQL.replace('$run', '?')}), "
            "tests AS (SELECT g.step, g.value FROM metrics g JOIN run_summary s "
            "ON g.run = s.run AND g.name = s.test_metric WHERE g.run = ?) "
            "SELECT v.step, median(v.value) AS value, any_value(t.value) AS test FROM vals v "
            "JOIN tests t ON v.step = t.step WHERE v.metric = ? AND v.target = ? AND v.module = ? "
            "GROUP BY v.step ORDER BY v.step",
            [run, run, run, metric, target, module],
        )

    def alpha_gaps(self, run: str, target: str, module: str | None = None) -> pd.DataFrame:
        """Why alpha-over-steps has no point at a step: step, failed (fits that failed), fits (all of the
        step's fits, of one module kind when given) and reason (the most common failure), one row per step
        with any failed fit."""
        return self._df(
            "SELECT f.step, count(*) FILTER (WHERE f.fit_status <> 'ok') AS failed, count(*) AS fits, "
            "mode(f.fit_error) FILTER (WHERE f.fit_status <> 'ok') AS reason FROM fits f "
            "JOIN tensors t USING (run, step, tensor) WHERE f.run = ? AND f.target = ? "
            "AND (? IS NULL OR t.module = ?) GROUP BY f.step HAVING failed > 0 ORDER BY f.step",
            [run, target, module, module],
        )
