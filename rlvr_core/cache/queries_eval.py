"""The named queries of evaluations and rank-k comparisons: every evaluation, the recovery rows (with their
paired counts and McNemar p, written by `rlvr compare`), one evaluation's problems, and two evaluations
side by side, problem by problem. A part of `Queries` (its base class), kept in its own file; the same
rules: SQL only here, parameters bound, DataFrames out.

May import: `rlvr_core.errors` and this package. Never torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .queries_research import ResearchQueries

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_RECOVERY_SQL = (
    "SELECT r.run, r.step, r.rank, r.mode, r.dataset, r.acc_base, r.acc_full, r.acc_rank, r.recovery, "
    "r.recovery_low, r.recovery_high, r.recovery_note, r.gain_low, r.gain_high, r.n_problems, "
    "r.eval_id_base, r.eval_id_full, r.eval_id_rank, coalesce(r.keep, 'base') AS keep, r.alpha, "
    "coalesce(r.modules, 'all') AS modules, r.gained_vs_full, r.lost_vs_full, r.mcnemar_full_p, "
    "r.gained_vs_base, r.lost_vs_base, r.mcnemar_base_p, e.n AS samples, "
    "r.recovery_high - r.recovery AS error_plus, r.recovery - r.recovery_low AS error_minus "
    "FROM recovery r LEFT JOIN evaluations e ON e.eval_id = r.eval_id_rank "
)
"""Every recovery row, with the rank-k evaluation's samples per problem (plain values only: reports dump the
rows as JSON; `latest_comparisons` orders by the rank-k evaluation's finish time without returning it)."""

_PAIRED_SQL = (
    "WITH a AS (SELECT problem_id, avg(correct::DOUBLE) AS score, any_value(gold) AS gold, "
    "arg_min(completion, sample) AS completion FROM eval_samples WHERE eval_id = ? GROUP BY problem_id), "
    "b AS (SELECT problem_id, avg(correct::DOUBLE) AS score, arg_min(completion, sample) AS completion "
    "FROM eval_samples WHERE eval_id = ? GROUP BY problem_id) "
    "SELECT a.problem_id, a.gold, a.score AS score_first, b.score AS score_second, "
    "CASE WHEN b.score >= 0.5 AND a.score < 0.5 THEN 'gained' WHEN a.score >= 0.5 AND b.score < 0.5 THEN 'lost' "
    "WHEN a.score >= 0.5 THEN 'both' ELSE 'neither' END AS outcome, "
    "a.completion AS completion_first, b.completion AS completion_second "
    "FROM a JOIN b USING (problem_id) "
    "ORDER BY CASE outcome WHEN 'gained' THEN 0 WHEN 'lost' THEN 1 WHEN 'both' THEN 2 ELSE 3 END, a.problem_id"
)
"""Two evaluations of the same problems, one row per problem (see `EvalQueries.paired_problems`)."""


class EvalQueries(ResearchQueries):
    """Queries over `evaluations`, `eval_samples` and `recovery` (a base class of `Queries`)."""

    def evaluations(self, runs: list[str] | None = None) -> pd.DataFrame:
        """eval_id, run, step, variant, dataset, accuracy, n_problems, n (samples per problem) of every
        evaluation (of `runs` when given)."""
        where = "WHERE list_contains(?, run)" if runs is not None else ""
        return self._df(
            f"SELECT eval_id, run, step, variant, dataset, accuracy, n_problems, n FROM evaluations {where} "
            "ORDER BY run, dataset, step, variant",
            [runs] if runs is not None else [],
        )

    def recovery(self) -> pd.DataFrame:
        """Every recovery row: accuracies, the recovery with its 95% interval or the reason it has none, the
        recipe (keep, alpha, modules: 'all' when every block weight was substituted), the paired counts
        and McNemar p against full and base, and the rank-k evaluation's samples per problem."""
        return self._df(_RECOVERY_SQL + "ORDER BY r.run, r.dataset, r.mode, r.rank, r.step")

    def latest_comparisons(self) -> pd.DataFrame:
        """The recovery rows, newest rank-k evaluation first (what the last comparison made comes first)."""
        return self._df(_RECOVERY_SQL + "ORDER BY e.finished_at DESC NULLS LAST, r.run, r.step DESC")

    def eval_samples(self, eval_id: str, only_wrong: bool = False) -> pd.DataFrame:
        return self._df(
            "SELECT problem_id, sample, gold, extracted, correct, completion FROM eval_samples "
            "WHERE eval_id = ? AND (NOT ? OR NOT correct) ORDER BY problem_id, sample",
            [eval_id, only_wrong],
        )

    def paired_problems(self, first: str, second: str) -> pd.DataFrame:
        """Two evaluations of the same problems side by side: problem_id, gold, each one's score (the share
        of its samples graded correct), outcome ('gained': only the second solves it, 'lost': only the
        first, 'both', 'neither'; solved = at least half its samples correct, as `math.stats.mcnemar`)
        and each one's first completion. Problems only one of them has are left out."""
        return self._df(_PAIRED_SQL, [first, second])
