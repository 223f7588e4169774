"""`rlvr demo --seeds 0-4 [--sweep 10,25,50]`: the built-in demo for several seeds, the periodic rank-1
run for several periods k, and every claim of the demo as a mean with its 95% interval over seeds.

Per seed `s` the demo is built in `<out>/seed-<s>/` into one shared cache, its runs named with `-s<s>`
(`demo-grpo-s3`, `demo-grpo-rank1-k25-s3`, ...), so the dashboard shows each seed and, for run names with
seed siblings, the band over seeds. Everything lands in `<out>/seeds_report.json` (and as tables in
`<out>/seeds_report.md`, `demo.seeds_tables`): the settings, each
seed's raw numbers, and per claim the summary over seeds (`math.stats.seed_interval`: mean, sample
sd, Student-t 95% interval of the mean):

- base test accuracy; per checkpoint of the plain run: test accuracy, reward (mean of the last 10
  steps), greedy accuracy on the training pool;
- rank-1 substitution of each checkpoint: its accuracy, and the recovery where the gain is real (the
  noise rule of `math.stats`; how many seeds had a real gain is counted);
- u1 alignment with the last step (mean |cos| over tensors) per checkpoint;
- heavy-tailed share of W and of dW at the last step;
- per period k, the decoupling of the periodic run: its share of the plain run's reward gain (over the
  first 10 steps' reward) and of its test gain (over the base), and their difference (test share minus
  reward share; > 0 means the test gain is kept better than the reward gain, the paper's "implicit reward
  overfitting"). Verdict per k: seen when the interval of the difference lies above 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..cache import Cache
from ..math.stats import seed_interval
from .build import DemoConfig, Progress, demo_runs, jsonable, plain_run, quick_config, run_demo, substituted_run
from .seeds_tables import markdown


@dataclass(frozen=True, kw_only=True)
class SeedsConfig:
    """What `rlvr demo --seeds` runs."""

    seeds: tuple[int, ...]
    """The seeds (each one full demo)."""
    periods: tuple[int, ...] = (10, 25, 50)
    """The periods k of the periodic rank-1 runs (one run per k and seed)."""
    out: Path = Path("demo-seeds")
    """`<out>/seed-<s>/` per seed, and `<out>/seeds_report.json`."""
    cache: Path = Path("cache")
    """The one cache all seeds' runs go to."""
    threads: int = 2
    """torch threads of every build."""
    quick: bool = False
    """Each seed's demo is the `--quick` one (tests)."""


def seed_config(config: SeedsConfig, seed: int) -> DemoConfig:
    """The demo settings of one seed."""
    make = quick_config if config.quick else DemoConfig
    return make(
        out=config.out / f"seed-{seed}",
        cache=config.cache,
        seed=seed,
        threads=config.threads,
        substitute_every=config.periods[0],
        sweep=config.periods[1:],
        run_suffix=f"-s{seed}",
    )


def run_seeds(config: SeedsConfig, progress: Progress | None = None) -> dict:
    """Build every seed, summarise, write `<out>/seeds_report.json`; returns the report."""
    report_progress = progress or (lambda m, f=None: None)
    started, per_seed = time.perf_counter(), {}
    for index, seed in enumerate(config.seeds):
        demo = seed_config(config, seed)

        def part(message: str, fraction: float | None = None, index: int = index, seed: int = seed) -> None:
            report_progress(f"seed {seed}: {message}", (index + (fraction or 0.0)) / len(config.seeds))

        per_seed[seed] = seed_numbers(Cache(config.cache), demo, run_demo(demo, part))
    report = {
        "settings": {**vars(config), "runs_per_seed": list(demo_runs(seed_config(config, config.seeds[0])))},
        "seconds": round(time.perf_counter() - started, 1),
        "per_seed": per_seed,
        "summary": summarize(per_seed, config.periods),
    }
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "seeds_report.json").write_text(json.dumps(jsonable(report), indent=1, allow_nan=False) + "\n")
    (config.out / "seeds_report.md").write_text(markdown(jsonable(report)))
    return report


def seed_numbers(cache: Cache, config: DemoConfig, report: dict) -> dict:
    """One seed's raw numbers (from its demo report and the cache)."""
    plain = plain_run(config)
    curves = {row["step"]: row for row in report["runs"][plain]}
    recovery = cache.queries().recovery()
    recovery = recovery[(recovery.run == plain) & (recovery["rank"] == 1)]
    findings = cache.queries().findings([plain])
    last = int(findings.step.max())
    heavy = {t: _value(findings[(findings.step == last) & (findings.target == t)].heavy_share) for t in ("W", "dW")}
    periodic = {
        str(k): {row["step"]: row for row in report["runs"][substituted_run(config, k)]}
        for k in (config.substitute_every, *config.sweep)
    }
    return {
        "base_accuracy": report["base_accuracy"],
        "warmup_steps": report["warmup"]["steps"],
        "plain": {
            str(s): {k: row.get(k) for k in ("eval_accuracy", "eval_pool_accuracy", "reward")}
            for s, row in curves.items()
        },
        "rank1": {
            str(int(r.step)): {
                "accuracy": r.acc_rank,
                "recovery": None if r.recovery != r.recovery else r.recovery,
                "recovery_low": r.recovery_low,
                "recovery_high": r.recovery_high,
                "note": r.recovery_note,
            }
            for r in recovery.itertuples()
        },
        "alignment": {str(r["step"]): r["cos_u_final_mean"] for r in report["alignment"][plain]},
        "heavy_share_last_step": heavy,
        "periodic": {
            k: {str(s): {"eval_accuracy": row["eval_accuracy"], "reward": row["reward"]} for s, row in rows.items()}
            for k, rows in periodic.items()
        },
        "timings": report["timings"],
    }


def _value(series) -> float | None:
    return float(series.iloc[0]) if len(series) and series.notna().all() else None


def summarize(per_seed: dict, periods: tuple[int, ...]) -> dict:
    """Per claim, the summary over seeds (see the module docstring)."""
    seeds = list(per_seed.values())
    steps = sorted({int(s) for seed in seeds for s in seed["plain"]})

    def over(get) -> dict:
        values = []
        for seed in seeds:
            try:
                values.append(get(seed))
            except (KeyError, TypeError):
                values.append(None)
        return seed_interval(values)

    summary: dict = {
        "n_seeds": len(seeds),
        "base_accuracy": over(lambda s: s["base_accuracy"]),
        "heavy_share_W": over(lambda s: s["heavy_share_last_step"]["W"]),
        "heavy_share_dW": over(lambda s: s["heavy_share_last_step"]["dW"]),
        "per_step": {},
        "decoupling": {},
    }
    for step in (s for s in steps if s):
        key = str(step)
        summary["per_step"][key] = {
            "test_accuracy": over(lambda s, k=key: s["plain"][k]["eval_accuracy"]),
            "reward": over(lambda s, k=key: s["plain"][k]["reward"]),
            "pool_accuracy": over(lambda s, k=key: s["plain"][k]["eval_pool_accuracy"]),
            "rank1_accuracy": over(lambda s, k=key: s["rank1"][k]["accuracy"]),
            "rank1_recovery": over(lambda s, k=key: s["rank1"][k]["recovery"]),
            "seeds_with_real_gain": sum(1 for s in seeds if s["rank1"].get(key, {}).get("recovery") is not None),
            "alignment": over(lambda s, k=key: s["alignment"][k]),
        }
    for k in map(str, periods):
        summary["decoupling"][k] = _decoupling(seeds, k, steps)
    return summary


def _decoupling(seeds: list[dict], k: str, steps: list[int]) -> dict:
    """The periodic run of period k against the plain run, at the last step (see the module docstring)."""
    last, first = str(steps[-1]), str(next(s for s in steps if s))
    reward_share, test_share = [], []
    for seed in seeds:
        plain, periodic = seed["plain"], seed["periodic"][k]
        start = plain[first]["reward"]
        reward_gain = plain[last]["reward"] - start
        test_gain = plain[last]["eval_accuracy"] - seed["base_accuracy"]
        reward_share.append((periodic[last]["reward"] - start) / reward_gain if reward_gain > 0 else None)
        test_share.append(
            (periodic[last]["eval_accuracy"] - seed["base_accuracy"]) / test_gain if test_gain > 0 else None
        )
    differences = [t - r for t, r in zip(test_share, reward_share, strict=True) if t is not None and r is not None]
    result: dict = {
        "reward_share": seed_interval(reward_share),
        "test_share": seed_interval(test_share),
        "test_minus_reward_share": seed_interval(differences),
        "periodic_test_accuracy": seed_interval([s["periodic"][k][last]["eval_accuracy"] for s in seeds]),
        "periodic_reward": seed_interval([s["periodic"][k][last]["reward"] for s in seeds]),
    }
    low = result["test_minus_reward_share"]["low"]
    high = result["test_minus_reward_share"]["high"]
    if not (low == low and high == high):
        verdict = "undecided: fewer than two seeds with a gain in both reward and test accuracy"
    elif low > 0:
        verdict = "seen: the test gain is kept better than the reward gain, beyond the spread over seeds"
    elif high < 0:
        verdict = "reversed: the reward gain is kept better than the test gain, beyond the spread over seeds"
    else:
        verdict = "not seen: the kept shares of test and reward gain differ by less than the spread over seeds"
    result["verdict"] = verdict
    return result
