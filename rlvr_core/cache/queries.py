"""The named queries: every question the pages, the CLI and the demo ask of the cache, in one place.

`Queries` wraps one DuckDB connection from `Cache.connect()` (views bound when it was opened). Methods
return pandas DataFrames (the dashboard draws them) or plain Python values. A column name that a caller
chooses (a measure to plot) is checked against the views' columns before it goes into SQL.

May import: `rlvr_core.errors` and this package. Never torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .queries_eval import EvalQueries
from .views import ALIGNMENT_MEASURES as ALIGNMENT_MEASURES

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

_KNOWN_RUNS = (
    "known AS (SELECT run FROM checkpoints UNION SELECT run FROM run_summary UNION SELECT run FROM metrics "
    "UNION SELECT run FROM evaluations WHERE run IS NOT NULL UNION SELECT run FROM recovery)"
)
"""Every run the cache knows: analysed, with an ingested log, or with evaluations."""
_LAST_VERDICTS = (
    "(SELECT run, status, since, step FROM (SELECT run, status, since, step, row_number() OVER "
    "(PARTITION BY run ORDER BY step DESC) AS back FROM decoupling) WHERE back = 1)"
)
"""The monitor's last verdict per run (`decoupling`): run, status, since, step."""
_RUNS_SQL = (
    f"WITH {_KNOWN_RUNS}, "
    "latest AS (SELECT run, max(step) AS step FROM tensors GROUP BY run), "
    "size AS (SELECT t.run, sum(list_aggregate(t.shape, 'product')) FILTER (WHERE len(t.shape) > 0) AS parameters "
    "FROM tensors t JOIN latest l ON t.run = l.run AND t.step = l.step GROUP BY t.run), "
    "tests AS (SELECT m.run, arg_min(m.value, m.step) AS test_first, arg_max(m.value, m.step) AS test_final "
    "FROM metrics m JOIN run_summary s ON m.run = s.run AND m.name = s.test_metric GROUP BY m.run), "
    "rewards AS (SELECT m.run, m.step, m.value, row_number() OVER (PARTITION BY m.run ORDER BY m.step DESC) AS back "
    "FROM metrics m JOIN run_summary s ON m.run = s.run AND m.name = s.reward_metric), "
    "final_rewards AS (SELECT run, avg(value) AS final_reward FROM rewards WHERE back <= 10 GROUP BY run), "
    f"monitor AS {_LAST_VERDICTS} "
    "SELECT k.run, count(c.step) FILTER (WHERE NOT c.is_base) AS steps, "
    "coalesce(list(c.step ORDER BY c.step) FILTER (WHERE c.step IS NOT NULL), []) AS step_list, "
    "sum(c.n_analyzed) AS tensors_analysed, any_value(c.base_path) AS base, max(c.analyzed_at) AS last_analysed, "
    "(SELECT count(*) FROM metrics m WHERE m.run = k.run) AS logged_values, "
    "(SELECT count(*) FROM evaluations e WHERE e.run = k.run) AS evaluations, "
    "any_value(c.layout) FILTER (WHERE NOT c.is_base) AS layout, any_value(z.parameters) AS parameters, "
    "any_value(t.test_first) AS test_first, any_value(t.test_final) AS test_final, "
    "any_value(r.final_reward) AS final_reward, any_value(s.test_metric) AS test_metric, "
    "any_value(s.spearman) AS spearman, any_value(mo.status) AS monitor, any_value(mo.since) AS monitor_since "
    "FROM known k LEFT JOIN checkpoints c USING (run) LEFT JOIN size z ON z.run = k.run "
    "LEFT JOIN tests t ON t.run = k.run LEFT JOIN final_rewards r ON r.run = k.run "
    "LEFT JOIN run_summary s ON s.run = k.run LEFT JOIN monitor mo ON mo.run = k.run GROUP BY k.run ORDER BY k.run"
)
"""One row per known run (the Runs page's table and `rlvr runs`)."""
LAYER_MEASURES = ("rank1_energy", "stable_rank", "spectral_norm", "fro_norm")
"""Per-tensor measures of the `layers` view that can be plotted."""


def _checked(column: str, allowed: tuple[str, ...]) -> str:
    if column not in allowed:
        raise UsageError("measure", f"one of {', '.join(allowed)}", repr(column), "pick a listed measure")
    return column


SEED_NAME = re.compile(r"(?P<family>.+)-s(?P<seed>\d+)")
"""A seed's run name: the family's name, `-s`, the seed."""


class Queries(EvalQueries):
    """Named queries over one connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def _df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def _column(self, sql: str, params: list[Any] | None = None) -> list[Any]:
        return [row[0] for row in self.con.execute(sql, params or []).fetchall()]

    # ---- runs and steps --------------------------------------------------------------------------------
    def runs(self) -> list[str]:
        """Runs with at least one analysed checkpoint."""
        return self._column("SELECT DISTINCT run FROM checkpoints ORDER BY run")

    def seed_families(self) -> dict[str, list[str]]:
        """Runs that are seeds of one experiment, by family: names `<family>-s<seed>` (as `rlvr demo --seeds`
        writes them) with at least two seeds cached, analysed or only logged; seeds in numeric order."""
        names = set(self.runs()) | set(self._column("SELECT DISTINCT run FROM run_summary"))
        families: dict[str, list[tuple[int, str]]] = {}
        for name in names:
            match = SEED_NAME.fullmatch(name)
            if match:
                families.setdefault(match["family"], []).append((int(match["seed"]), name))
        return {f: [n for _, n in sorted(runs)] for f, runs in sorted(families.items()) if len(runs) > 1}

    def steps(self, run: str) -> list[int]:
        """The analysed steps of `run` (the base as step 0 included)."""
        return self._column("SELECT step FROM checkpoints WHERE run = ? ORDER BY step", [run])

    def runs_overview(self) -> pd.DataFrame:
        """One row per run the cache knows (analysed checkpoints, an ingested log, evaluations): steps,
        tensors analysed, base, logged values, evaluations."""
        return self._df(_RUNS_SQL)

    def run_listing(self) -> list[tuple[str, list[int], int, Any, int, int]]:
        """(run, steps, number of checkpoints, last analysed, logged values, evaluations) per run the cache
        knows, for `rlvr runs`."""
        rows = self.con.execute(_RUNS_SQL).fetchall()
        return [(r[0], list(r[2]), len(r[2]), r[5], int(r[6]), int(r[7])) for r in rows]

    def checkpoints(self) -> pd.DataFrame:
        """Every analysed checkpoint, with `files`: `there`, or `gone` when its folder was deleted after the
        analysis (a trainer's `save_total_limit`: the cached results stay), and the precision it was read in
        (`weights_dtype` from `weights_source`; `dw_zero_fraction`: dW's share of exactly-zero entries)."""
        frame = self._df(
            "SELECT run, step, is_base, n_analyzed AS tensors, layout, weights_dtype, weights_source, "
            "dw_zero_fraction, device, round(seconds, 1) AS seconds, analyzed_at, path, source, revision "
            "FROM checkpoints ORDER BY run, step"
        )
        frame["files"] = ["there" if Path(p).exists() else "gone" for p in frame["path"]]
        return frame

    def run_sources(self) -> list[tuple[str, str, list[str]]]:
        """(run, base model path, step checkpoint paths in step order) per analysed run (base step left out)."""
        return [
            tuple(row)
            for row in self.con.execute(
                "SELECT run, any_value(base_path) AS base, list(path ORDER BY step) AS paths FROM checkpoints "
                "WHERE NOT is_base GROUP BY run ORDER BY run"
            ).fetchall()
        ]

    def broken(self) -> pd.DataFrame:
        """Cache files that cannot be read (left out of every other view): path, run, step, eval_id, view,
        error."""
        return self._df("SELECT * FROM broken ORDER BY run, step, eval_id, path")

    def run_settings(self, run: str) -> list[tuple[int, str]]:
        """(step, analysis settings JSON) of each analysed step of `run` (the base included)."""
        return [
            tuple(r)
            for r in self.con.execute(
                "SELECT step, settings FROM checkpoints WHERE run = ? ORDER BY step", [run]
            ).fetchall()
        ]

    # ---- per-layer measures ----------------------------------------------------------------------------
    def layers(self, run: str, step: int, target: str, expert: int | None = None) -> pd.DataFrame:
        """The per-tensor measures of one step and target (with `expert`, the dense tensors and that one
        expert's only)."""
        where = "" if expert is None else " AND (expert IS NULL OR expert = ?)"
        return self._df(
            "SELECT layer, module, expert, tensor, rows, cols, fro_norm, spectral_norm, stable_rank, rank1_energy "
            f"FROM layers WHERE run = ? AND step = ? AND target = ?{where} ORDER BY layer, module, expert",
            [run, step, target] + ([] if expert is None else [expert]),
        )

    def experts(self, run: str, step: int) -> list[int]:
        """The expert indices of a mixture-of-experts step ([] for a dense model)."""
        sql = "SELECT DISTINCT expert FROM layers WHERE run = ? AND step = ? AND expert IS NOT NULL ORDER BY 1"
        return [int(e) for e in self._column(sql, [run, step])]

    def layers_over_experts(self, run: str, step: int, target: str, measure: str) -> pd.DataFrame:
        """layer, module, experts, q1, median, q3 of one measure over the experts of each layer and module
        kind (a dense module: its one value, experts = 0)."""
        column = _checked(measure, LAYER_MEASURES)
        return self._df(
            f"SELECT layer, module, count(expert) AS experts, quantile_cont({column}, 0.25) AS q1, "
            f"median({column}) AS median, quantile_cont({column}, 0.75) AS q3 FROM layers "
            "WHERE run = ? AND step = ? AND target = ? GROUP BY layer, module ORDER BY layer, module",
            [run, step, target],
        )

    def layer_measure_per_layer(self, run: str, module: str, measure: str) -> pd.DataFrame:
        """layer, step, value of one measure of dW for the tensors of one module kind (the median over a
        layer's experts for a mixture of experts)."""
        column = _checked(measure, LAYER_MEASURES)
        return self._df(
            f"SELECT layer, step, median({column}) AS value FROM layers WHERE run = ? AND target = 'dW' "
            "AND module = ? GROUP BY layer, step ORDER BY layer, step",
            [run, module],
        )

    def layer_measure_by_module(self, run: str, measure: str) -> pd.DataFrame:
        """module, step, q1, median, q3 of one measure of dW over the layers of each module kind."""
        column = _checked(measure, LAYER_MEASURES)
        return self._df(
            f"SELECT module, step, quantile_cont({column}, 0.25) AS q1, median({column}) AS median, "
            f"quantile_cont({column}, 0.75) AS q3 FROM layers WHERE run = ? AND target = 'dW' "
            "GROUP BY module, step ORDER BY module, step",
            [run],
        )

    # ---- fits and spectra ------------------------------------------------------------------------------
    def fit_runs(self) -> list[str]:
        return self._column("SELECT DISTINCT run FROM fits ORDER BY run")

    def fit_steps(self, run: str) -> list[int]:
        return self._column("SELECT DISTINCT step FROM fits WHERE run = ? ORDER BY step", [run])

    def fits(self, run: str, step: int, target: str) -> pd.DataFrame:
        """The power-law fits of one step and target, with each tensor's layer and module and, for a failed
        fit, its reason."""
        return self._df(
            "SELECT f.tensor, t.layer, t.module, f.alpha, f.alpha_se, f.xmin, f.n_tail, f.n_evals, f.ks_d, "
            "f.heavy_tailed, f.lr_exponential, f.p_exponential, f.lr_lognormal, f.p_lognormal, "
            "f.lr_truncated_power_law, f.p_truncated_power_law, f.fit_status, f.fit_error "
            "FROM fits f JOIN tensors t USING (run, step, tensor) "
            "WHERE f.run = ? AND f.step = ? AND f.target = ? ORDER BY t.layer, t.module",
            [run, step, target],
        )

    def esd_histograms(self, run: str, tensor: str, target: str, steps: list[int]) -> pd.DataFrame:
        """step, bin_lo, bin_hi, density of one tensor's log-binned ESD at each of `steps`."""
        return self._df(
            "SELECT step, bin_lo, bin_hi, density FROM esd_hist WHERE run = ? AND tensor = ? AND target = ? "
            "AND list_contains(?, step) ORDER BY step, bin_lo",
            [run, tensor, target, steps],
        )

    def tensor_singular_values(self, run: str, tensor: str, target: str, steps: list[int]) -> dict[int, list[float]]:
        """step -> the cached singular values (`spectra.sv`) of one tensor and target at each of `steps`."""
        found = self.con.execute(
            "SELECT step, sv FROM spectra WHERE run = ? AND tensor = ? AND target = ? AND list_contains(?, step)",
            [run, tensor, target, steps],
        ).fetchall()
        return {int(step): sv for step, sv in found}

    def singular_values(self, step: int) -> list[list[float]]:
        """Every cached singular-value list (`spectra.sv`) of one step, over all runs, by tensor and target."""
        return self._column("SELECT sv FROM spectra WHERE step = ? ORDER BY run, tensor, target", [step])

    def alpha_per_layer(self, run: str, target: str, module: str) -> pd.DataFrame:
        """layer, step, alpha of the successful fits of one module kind (the median over a layer's experts
        for a mixture of experts)."""
        return self._df(
            "SELECT t.layer, f.step, median(f.alpha) AS alpha FROM fits f JOIN tensors t USING (run, step, tensor) "
            "WHERE f.run = ? AND f.target = ? AND t.module = ? AND f.fit_status = 'ok' "
            "GROUP BY t.layer, f.step ORDER BY t.layer, f.step",
            [run, target, module],
        )

    def alpha_by_module(self, run: str, target: str) -> pd.DataFrame:
        """module, step, median alpha over the layers of each module kind (successful fits)."""
        return self._df(
            "SELECT t.module, f.step, median(f.alpha) AS alpha FROM fits f JOIN tensors t "
            "USING (run, step, tensor) WHERE f.run = ? AND f.target = ? AND f.fit_status = 'ok' "
            "GROUP BY t.module, f.step ORDER BY f.step",
            [run, target],
        )

    # ---- alignment -------------------------------------------------------------------------------------
    def alignment_runs(self) -> list[str]:
        return self._column("SELECT DISTINCT run FROM alignment ORDER BY run")

    def alignment_modules(self, run: str) -> list[str]:
        return self._column("SELECT DISTINCT module FROM alignment WHERE run = ? ORDER BY module", [run])

    def alignment_per_layer(self, run: str, module: str, measure: str) -> pd.DataFrame:
        """layer, step, value of one alignment measure for the tensors of one module kind (the median over a
        layer's experts for a mixture of experts)."""
        column = _checked(measure, ALIGNMENT_MEASURES)
        return self._df(
            f"SELECT layer, step, median({column}) AS value FROM alignment WHERE run = ? AND module = ? "
            "GROUP BY layer, step ORDER BY layer, step",
            [run, module],
        )

    def alignment_by_module(self, run: str, measure: str) -> pd.DataFrame:
        """module, step, median, q1, q3 of one alignment measure over the layers of each module kind."""
        column = _checked(measure, ALIGNMENT_MEASURES)
        return self._df(
            f"SELECT module, step, {column}_median AS median, {column}_q1 AS q1, {column}_q3 AS q3 "
            "FROM alignment_by_module WHERE run = ? ORDER BY module, step",
            [run],
        )

    def alignment_grid(self, run: str, measure: str, module: str | None = None) -> pd.DataFrame:
        """layer, step, value: one alignment measure averaged over the modules of each layer (or of one
        module kind)."""
        column = _checked(measure, ALIGNMENT_MEASURES)
        where = "AND module = ?" if module else ""
        return self._df(
            f"SELECT layer, step, avg({column}) AS value FROM alignment WHERE run = ? {where} "
            "GROUP BY layer, step ORDER BY layer, step",
            [run] + ([module] if module else []),
        )

    def rank1_dynamics(self, run: str) -> pd.DataFrame:
        """Per tensor: the R² of a straight line through sigma1 * u1 over the steps, and sigma1 at the first and
        final steps."""
        return self._df(
            "SELECT tensor, layer, module, n_steps, r2_linear, sigma1_first, sigma1_final "
            "FROM rank1_dynamics WHERE run = ? ORDER BY layer, module",
            [run],
        )

    def alignment_summary(self, runs: list[str]) -> list[tuple[str, int, float, float, float]]:
        """(run, step, mean |cos u1 final|, median, mean |cos u1 prev|) per step of `runs`."""
        return [
            tuple(row)
            for row in self.con.execute(
                "SELECT run, step, avg(cos_u_final), median(cos_u_final), avg(cos_u_prev) FROM alignment "
                "WHERE list_contains(?, run) GROUP BY run, step ORDER BY run, step",
                [runs],
            ).fetchall()
        ]

    def findings(self, runs: list[str]) -> pd.DataFrame:
        """Per run, step and target (W, dW): fitted tensors, successful fits, heavy-tailed share of the
        successful ones, median alpha, median sigma1 and median rank-1 energy (the paper's claims per step)."""
        return self._df(
            "SELECT f.run, f.step, f.target, count(*) AS n_tensors, count(f.alpha) AS n_fitted, "
            "avg(CASE WHEN f.alpha IS NULL THEN NULL ELSE f.heavy_tailed::INT END) AS heavy_share, "
            "median(f.alpha) AS alpha_median, median(l.spectral_norm) AS sigma1_median, "
            "median(l.rank1_energy) AS rank1_energy_median FROM fits f LEFT JOIN layers l "
            "USING (run, step, tensor, target) WHERE list_contains(?, f.run) "
            "GROUP BY f.run, f.step, f.target ORDER BY f.run, f.target, f.step",
            [runs],
        )

    # ---- training logs ---------------------------------------------------------------------------------
    def run_summaries(self) -> pd.DataFrame:
        return self._df(
            "SELECT run, reward_metric, test_metric, spearman, reward_peak_step, test_peak_step, "
            "n_shared_steps, log_format, test_metric_note FROM run_summary ORDER BY run"
        )

    def reward_and_test(self, runs: list[str]) -> pd.DataFrame:
        """run, step, name, value, reward_metric, test_metric, pool_metric: the chosen reward and test series of
        `runs`, and the accuracy on the training pool where the log has one (the monitor's `pool_metric`)."""
        return self._df(
            "WITH pools AS (SELECT run, any_value(pool_metric) AS pool_metric FROM decoupling GROUP BY run) "
            "SELECT m.run, m.step, m.name, m.value, s.reward_metric, s.test_metric, p.pool_metric FROM metrics m "
            "JOIN run_summary s USING (run) LEFT JOIN pools p USING (run) WHERE list_contains(?, m.run) AND "
            "(m.name = s.reward_metric OR m.name = s.test_metric OR m.name = p.pool_metric) ORDER BY m.run, m.step",
            [runs],
        )

    def decoupling(self, runs: list[str]) -> pd.DataFrame:
        """Every verdict of the implicit-reward-overfitting monitor (`math.monitor`) for `runs`, by step."""
        return self._df("SELECT * FROM decoupling WHERE list_contains(?, run) ORDER BY run, step", [runs])

    def monitor_latest(self) -> dict[str, tuple[str, int | None, int]]:
        """run -> (status, since, step) of the monitor's last verdict, for runs with a test metric."""
        rows = self.con.execute(f"SELECT run, status, since, step FROM {_LAST_VERDICTS}").fetchall()
        return {r[0]: (r[1], None if r[2] is None else int(r[2]), int(r[3])) for r in rows}

    def metric_names(self, runs: list[str]) -> list[str]:
        """Every metric logged by any of `runs`."""
        return self._column("SELECT DISTINCT name FROM metrics WHERE list_contains(?, run) ORDER BY name", [runs])

    def metric_series(self, runs: list[str], names: list[str]) -> pd.DataFrame:
        """run, step, name, value of the chosen metrics of `runs`."""
        return self._df(
            "SELECT run, step, name, value FROM metrics WHERE list_contains(?, run) AND "
            "list_contains(?, name) ORDER BY run, name, step",
            [runs, names],
        )
