"""The real-model demo's findings, claim by claim, each with its uncertainty, read back from the cache
(so the report says what the dashboard shows):

1. Rank-1 recovery (the paper's claim 1): the rank-1 variant's accuracy against base and full, with the
   recovery and its 95% paired-bootstrap interval when the gain is real (`math.stats`).
2. Decoupling under periodic rank-1 substitution (claim 2, "implicit reward overfitting"): the training
   reward of the twin against the plain run over the last half of training (difference of means, 95%
   bootstrap interval over steps) and their held-out accuracy at the last step (paired difference over
   problems). Verdict: seen when the twin's reward is lower beyond the noise while its test accuracy is
   not; otherwise the reason.
3. Heavy tails (claim 3): the heavy-tailed share of W and of dW at the last step, among successful fits.
4. Alignment (claim 4): the mean |cos| of each step's u1 with the last step's.
Plus the fit success share of dW and the typical dW singular-value scale (median sigma1).
"""

from __future__ import annotations

import numpy as np

from ..cache import Cache
from ..math.stats import mean_difference, paired_difference, wilson_interval


def summarize(cache: Cache, runs: list[str]) -> dict:
    """The findings of `runs` (the plain run first, then its periodic rank-1 twin)."""
    queries = cache.queries()
    findings = queries.findings(runs)
    out: dict = {"runs": {}}
    for run in runs:
        rows = findings[findings.run == run]
        dw, w = rows[rows.target == "dW"], rows[rows.target == "W"]
        last = int(rows.step.max()) if len(rows) else None
        out["runs"][run] = {
            "dw_fits": {
                "tensors": int(dw.n_tensors.sum()),
                "fitted": int(dw.n_fitted.sum()),
                "share": float(dw.n_fitted.sum() / max(dw.n_tensors.sum(), 1)),
            },
            "dw_sigma1_median_by_step": {int(r.step): float(r.sigma1_median) for r in dw.itertuples()},
            "dw_rank1_energy_median_by_step": {int(r.step): float(r.rank1_energy_median) for r in dw.itertuples()},
            "heavy_share_last_step": {
                target: _share(frame[frame.step == last]) for target, frame in (("W", w), ("dW", dw))
            },
            "alpha_median_last_step": {
                target: _first(frame[frame.step == last].alpha_median) for target, frame in (("W", w), ("dW", dw))
            },
            "alignment_cos_u_final_mean": {
                int(step): float(mean) for r, step, mean, _med, _prev in queries.alignment_summary([run]) if r == run
            },
            "evaluations": _evaluations(cache, run),
        }
    recovery = queries.recovery()
    out["recovery"] = recovery[recovery.run.isin(runs)].to_dict("records")
    if len(runs) == 2:
        out["decoupling"] = decoupling(cache, runs[0], runs[1])
    return out


def _share(frame) -> float | None:
    return float(frame.heavy_share.iloc[0]) if len(frame) and frame.heavy_share.notna().all() else None


def _first(series) -> float | None:
    return float(series.iloc[0]) if len(series) else None


def _evaluations(cache: Cache, run: str) -> list[dict]:
    """Every evaluation of `run` with its 95% Wilson interval."""
    rows = []
    for r in cache.queries().evaluations([run]).itertuples():
        correct = round(r.accuracy * r.n_problems * r.n)
        low, high = wilson_interval(correct, int(r.n_problems * r.n))
        rows.append(
            {
                "step": int(r.step),
                "variant": r.variant,
                "accuracy": float(r.accuracy),
                "low": low,
                "high": high,
                "n_problems": int(r.n_problems),
                "eval_id": r.eval_id,
            }
        )
    return rows


def decoupling(cache: Cache, plain: str, twin: str) -> dict:
    """Claim 2 for a plain run and its periodic rank-1 twin: reward gap, test gap, verdict."""
    queries = cache.queries()
    summaries = queries.run_summaries().set_index("run")
    metric = summaries.reward_metric.get(plain)
    series = queries.metric_series([plain, twin], [metric]) if metric else None
    result: dict = {"reward_metric": metric}
    if series is None or series.empty:
        return {**result, "verdict": "no training reward logged"}
    last = int(series.step.max())
    late = series[series.step > last / 2]
    rewards = [late[late.run == r].value.to_numpy() for r in (plain, twin)]
    if min(len(v) for v in rewards) == 0:
        return {**result, "verdict": "the two runs share no logged steps"}
    gap, low, high = mean_difference(rewards[0], rewards[1])
    result["reward_gap"] = {"plain_minus_twin": gap, "low": low, "high": high, "steps_from": int(late.step.min())}
    finals = {r: _last_full(cache, r) for r in (plain, twin)}
    if any(v is None for v in finals.values()):
        return {**result, "verdict": "no held-out evaluation of both runs' last steps"}
    scores = [cache.eval_scores(finals[r]) for r in (plain, twin)]  # type: ignore[arg-type]
    problems = sorted(set(scores[0]) & set(scores[1]))
    a, b = (np.array([s[p] for p in problems]) for s in scores)
    test_gap, test_low, test_high = paired_difference(a, b)
    result["test_gap"] = {"plain_minus_twin": test_gap, "low": test_low, "high": test_high, "n_problems": len(problems)}
    reward_lower = low > 0
    test_not_lower = test_low <= 0
    if reward_lower and test_not_lower:
        verdict = "seen: the twin's training reward is lower beyond the noise, its test accuracy is not"
    elif not reward_lower:
        verdict = "not seen: the twin's training reward is not lower beyond the noise"
    else:
        verdict = "not seen: the twin's test accuracy is lower too"
    return {**result, "verdict": verdict}


def _last_full(cache: Cache, run: str) -> str | None:
    evaluations = cache.queries().evaluations([run])
    full = evaluations[evaluations.variant == "full"]
    return None if full.empty else str(full.sort_values("step").eval_id.iloc[-1])
