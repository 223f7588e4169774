"""The named queries of the research pages beyond the paper: predictions from early steps (`rlvr predict`)
and which spectral metric tracks accuracy (`metric_correlations`). A part of `Queries` (its base class),
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
