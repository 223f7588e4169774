"""Which logged metric is the training reward and which the held-out test score: the names each RL
framework really writes, read from their logging code (versions below), and the choice between them.

Train reward, first present of:

| name | written by |
| --- | --- |
| `critic/score/mean` | verl 0.9.1 (`metric_utils.compute_data_metrics`) |
| `train/reward` | OpenRLHF 0.11.0 on TensorBoard (`TensorboardLogger.log_train`: `train/<key>`); TRL on TensorBoard |
| `reward` | TRL 1.16.0 `GRPOTrainer` in `trainer_state.json` |
| `train/rewards/mean`, `rewards/mean` | generic |

Held-out test score, accuracy-like names first, then held-out rewards (a reward on a held-out set is the
only held-out signal TRL's GRPOTrainer logs):

| name | written by |
| --- | --- |
| `val-core/<source>/acc/mean@<n>` | verl 0.9.1 (`RayPPOTrainer._val_metrics_update`; reward returns `acc`) |
| `val/test_score/<source>` | verl before 0.3 |
| `eval/eval_<ds>_pass1` | OpenRLHF 0.11.0 on TensorBoard (`compute_eval_metrics` + `log_eval`: `eval/<key>`) |
| `eval_accuracy`, `eval/accuracy`, `eval_*acc*`, `eval/*acc*`, `test*acc*` | `Trainer` + an accuracy metric; the demo |
| `val-core/<source>/reward/mean@<n>` | verl 0.9.1 when the reward function returns no `acc` |
| `eval_reward`, `eval/reward` | TRL 1.16.0 `GRPOTrainer.log` (`eval_` prefix; TensorBoard: `eval/`) |
| `eval_rewards/<func>/mean`, `eval/rewards/<func>/mean` | TRL 1.16.0, per reward function |

The accuracy on the training pool (`eval_pool_accuracy`, `eval/pool_accuracy`, `train_pool_accuracy`;
the demo logs it) is never taken as the test metric; the monitor uses it for the generalisation gap.

Several validation sets (verl logs `val-core/<source>/acc/mean@<n>` per data source): the first in name
order is taken, and `other_tests` lists the others (`rlvr logs` prints them; `--test` picks one).

When none is present the test metric is None and `test_note` says which held-out-looking names the log
does hold. Plain Python: no torch.
"""

from __future__ import annotations

import difflib
import math
import re

REWARD_CANDIDATES = (r"critic/score/mean", r"train/reward", r"reward", r"train/rewards?/mean", r"rewards?/mean")
TEST_CANDIDATES = (
    r"val-core/.+/acc/mean@\d+",
    r"val/test_score/.+",
    r"eval/eval_.+_pass1",
    r"eval_accuracy",
    r"eval/accuracy",
    r"eval_(?!pool_).*acc.*",
    r"eval/(?!pool_).*acc.*",
    r"test.*acc.*",
    r"val-core/.+/reward/mean@\d+",
    r"eval_reward",
    r"eval/reward",
    r"eval_rewards/.+/mean",
    r"eval/rewards/.+/mean",
)
POOL_CANDIDATES = (r"eval_pool_accuracy", r"eval/pool_accuracy", r"train_pool_accuracy", r"train/pool_accuracy")
"""Accuracy on the training prompts themselves (greedy), where a log has it (the demo's `eval_pool_accuracy`):
with the test metric it gives the generalisation gap the monitor (`math.monitor`) watches. Never a test
metric."""
_HELD_OUT = re.compile(r"^(eval|val|test)", re.IGNORECASE)
_SCORE_LIKE = re.compile(r"acc|reward|score|pass", re.IGNORECASE)


def first_match(names: list[str], patterns: tuple[str, ...]) -> str | None:
    """The first of `names` matching the earliest pattern, or None."""
    for pattern in patterns:
        for name in names:
            if re.fullmatch(pattern, name):
                return name
    return None


def other_tests(names: list[str], chosen: str | None) -> list[str]:
    """The other validation sets of the chosen test metric's kind (`val-core/<source>/acc/mean@<n>` of
    other sources): the rule takes the first in alphabetical order; these are listed so a user can pick."""
    if chosen is None:
        return []
    pattern = next((p for p in TEST_CANDIDATES if re.fullmatch(p, chosen)), None)
    return [n for n in names if n != chosen and pattern and re.fullmatch(pattern, n)]


def log_warnings(log, summary: dict) -> list[str]:
    """What a user must know about an ingested log: reward and test with too few shared steps for a
    Spearman rho (a W&B history read on the wrong step key has none), and the other validation sets."""
    found = []
    test, shared = summary["test_metric"], summary["n_shared_steps"]
    if test is not None and shared < 3:
        found.append(
            f"the reward '{summary['reward_metric']}' and the test '{test}' share {shared} logged step(s), too few "
            "for a Spearman rho: check that both are logged on the trainer's step (a W&B export: its "
            "train/global_step, eval/global_step columns), or pass --reward / --test"
        )
    others = other_tests(log.names(), test)
    if others:
        shown = ", ".join(others[:5]) + (f" (+{len(others) - 5} more)" if len(others) > 5 else "")
        found.append(f"test metric '{test}' chosen (the first in name order); other validation sets: {shown}; pick "
                     "one with --test")  # fmt: skip
    return found


def likely_names(names: list[str], wanted: str | None = None, limit: int = 12) -> list[str]:
    """`names` ordered by how likely a user meant them: close spellings of `wanted` first, then held-out
    names (`eval*`, `val*`, `test*`) that look like a score, other held-out names, other score-like names,
    the rest; at most `limit`."""
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.75) if wanted else []

    def rank(name: str) -> tuple:
        held, score = bool(_HELD_OUT.match(name)), bool(_SCORE_LIKE.search(name))
        return (0 if held and score else 1 if held else 2 if score else 3, name)

    ordered = close + [n for n in sorted(names, key=rank) if n not in close]
    return ordered[:limit]


def test_note(names: list[str]) -> str:
    """Why no test metric was picked, and which held-out names the log holds."""
    held = [n for n in likely_names(names, limit=len(names)) if _HELD_OUT.match(n)][:8]
    holds = f"held-out names it holds: {', '.join(held)}" if held else "it holds no eval*/val*/test* names"
    return f"no held-out accuracy or reward among the logged metrics ({holds}); pass --test KEY"


def summarize_series(rewards: dict[int, float], tests: dict[int, float], window: int = 10) -> dict:
    """Spearman rho between reward and test over their shared steps, and the step where each peaks: the
    test's own peak, the reward's as the peak of its rolling mean over `window` logged steps (a one-step
    spike of a noisy reward is not its peak)."""
    from scipy.stats import spearmanr

    shared = sorted(set(rewards) & set(tests))
    rho = math.nan
    if len(shared) >= 3:
        value = spearmanr([rewards[s] for s in shared], [tests[s] for s in shared]).statistic
        rho = float(value) if value == value else math.nan
    ordered = sorted(rewards)
    smooth = {
        s: sum(rewards[t] for t in ordered[max(0, i - window + 1) : i + 1]) / min(i + 1, window)
        for i, s in enumerate(ordered)
    }
    return {
        "spearman": rho,
        "reward_peak_step": max(smooth, key=lambda s: (smooth[s], -s)) if smooth else None,
        "test_peak_step": max(tests, key=lambda s: (tests[s], -s)) if tests else None,
        "n_shared_steps": len(shared),
    }
