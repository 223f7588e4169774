"""Training logs in each framework's real shape: parsed, default metrics picked, summary stored."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from rlvr_core.cache.store import open_cache
from rlvr_core.readers.trainlog import TrainingLogError, pick_metrics, read_log

from .conftest import parquet_files

REWARD = {1: 0.10, 2: 0.20, 3: 0.35, 4: 0.50, 5: 0.62, 6: 0.70}
TEST = {2: 0.30, 4: 0.36, 6: 0.33}  # peaks at step 4 while the reward keeps rising


def write_verl(folder: Path) -> Path:
    """verl's file logger, as read from verl 0.9.1 (`verl/utils/tracking.py` FileLogger: one
    `{"step": N, "data": {...}}` per line; `val-core/<source>/<acc|reward>/mean@<n>` from
    `RayPPOTrainer._val_metrics_update`). verl does not install beside the pinned transformers (it pins an
    older one), so this file is hand-built."""
    path = folder / "verl_metrics.jsonl"
    with open(path, "w") as f:
        for step, r in REWARD.items():
            data = {"critic/score/mean": r, "actor/entropy": 1.0 / step, "response_length/mean": 200.0 + step}
            if step in TEST:
                data["val-core/openai/gsm8k/acc/mean@1"] = TEST[step]
            f.write(json.dumps({"step": step, "data": data}) + "\n")
    return path


def write_trl(folder: Path) -> Path:
    """A trainer_state.json of transformers' Trainer with an accuracy metric (tests/test_trl.py covers the
    files TRL's own GRPOTrainer writes)."""
    history = []
    for step, r in REWARD.items():
        history.append({"epoch": step / 6, "step": step, "reward": r, "loss": 0.01, "learning_rate": 1e-6})
        if step in TEST:
            history.append({"epoch": step / 6, "step": step, "eval_accuracy": TEST[step], "eval_loss": 0.5})
    path = folder / "checkpoint-6" / "trainer_state.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"global_step": 6, "log_history": history, "best_metric": None}, indent=2))
    return path


def write_tensorboard(folder: Path) -> Path:
    """OpenRLHF's TensorBoard logging, as read from OpenRLHF 0.11.0 (`openrlhf/utils/logging_utils.py`
    TensorboardLogger: `train/<key>` and `eval/<key>` through torch's SummaryWriter, the writer used here;
    `eval_<ds>_pass1` from `compute_eval_metrics`). OpenRLHF does not install here (it builds flash-attn)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder / "tb"))
    for step, r in REWARD.items():
        writer.add_scalar("train/reward", r, step)
        writer.add_scalar("train/policy_loss", 0.1, step)
        if step in TEST:
            writer.add_scalar("eval/eval_gsm8k_pass1", TEST[step], step)
    writer.close()
    return folder / "tb"


def write_wandb_csv(folder: Path) -> Path:
    path = folder / "wandb_export.csv"
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            [
                "Step",
                "grpo-a - train/reward",
                "grpo-a - train/reward__MIN",
                "grpo-a - train/reward__MAX",
                "grpo-a - eval/accuracy",
            ]
        )
        for step, r in REWARD.items():
            out.writerow([step, r, r - 0.1, r + 0.1, TEST.get(step, "")])
    return path


@pytest.mark.parametrize(
    "writer,fmt,reward,test",
    [
        (write_verl, "verl", "critic/score/mean", "val-core/openai/gsm8k/acc/mean@1"),
        (write_trl, "trl", "reward", "eval_accuracy"),
        (write_tensorboard, "tensorboard", "train/reward", "eval/eval_gsm8k_pass1"),
        (write_wandb_csv, "csv", "train/reward", "eval/accuracy"),
    ],
)
def test_each_format_with_default_metrics(tmp_path, cli, writer, fmt, reward, test) -> None:
    path = writer(tmp_path)
    log = read_log(path if fmt != "trl" else tmp_path)  # a folder is searched too
    assert log.format == fmt
    assert pick_metrics(log, None, None) == (reward, test)
    assert log.series(reward) == pytest.approx(REWARD) and log.series(test) == pytest.approx(TEST)
    cache = tmp_path / "cache"
    rc, out, err = cli("logs", path, "--run", "grpo-a", "--cache", cache)
    assert rc == 0, err
    con = open_cache(cache)
    summary = con.execute(
        "SELECT reward_metric, test_metric, spearman, reward_peak_step, test_peak_step "
        "FROM run_summary WHERE run = 'grpo-a'"
    ).fetchone()
    assert summary[:2] == (reward, test)
    assert summary[2] == pytest.approx(0.5)  # ranks (1,2,3) vs (1,3,2)
    assert summary[3:] == (6, 4)
    n = con.execute("SELECT count(*) FROM metrics WHERE run = 'grpo-a' AND name = ?", [reward]).fetchone()[0]
    assert n == len(REWARD)


def test_metric_override_and_unknown_key(tmp_path, cli) -> None:
    path = write_verl(tmp_path)
    log = read_log(path)
    assert pick_metrics(log, "actor/entropy", None)[0] == "actor/entropy"
    rc, _, err = cli("logs", path, "--run", "r", "--reward", "no/such", "--cache", tmp_path / "c")
    assert rc == 2 and "a metric named 'no/such' (--reward)" in err and "critic/score/mean" in err
    assert parquet_files(tmp_path / "c") == []


@pytest.mark.parametrize(
    "content,fragment",
    [
        (
            '{"step": 1, "data": {"critic/score/mean": 0.1}}\n{"step": 2, "data": {"critic/score/mean": 0.2}}\n'
            '{"step": 3, "data": {"critic/sc',
            "invalid JSON at line 3",
        ),
        (
            '{"step": 1, "data": {"critic/score/mean": 0.1}}\n{"step": "two", "data": {"x": 1}}\n',
            "an integer step, found 'two' at line 2",
        ),
        ('{"step": 1, "data": [0.1, 0.2]}\n', "'data' to be an object of metrics"),
        ("", "an empty log"),
    ],
)
def test_malformed_logs_name_the_line_and_store_nothing(tmp_path, cli, content, fragment) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(content)
    with pytest.raises(TrainingLogError) as err:
        read_log(path)
    assert fragment in str(err.value) and str(path) in str(err.value)
    rc, _, stderr = cli("logs", path, "--run", "r", "--cache", tmp_path / "c")
    assert rc == 2 and fragment in stderr
    assert parquet_files(tmp_path / "c") == []


def test_truncated_trainer_state(tmp_path) -> None:
    path = write_trl(tmp_path)
    path.write_text(path.read_text()[:200])
    with pytest.raises(TrainingLogError, match="invalid JSON at line"):
        read_log(path)


def test_summary_without_a_test_metric(tmp_path) -> None:
    from rlvr_core.readers.trainlog import summarize

    path = tmp_path / "m.jsonl"
    path.write_text(
        "".join(json.dumps({"step": s, "data": {"critic/score/mean": r}}) + "\n" for s, r in REWARD.items())
    )
    log = read_log(path)
    summary = summarize(log, *pick_metrics(log, None, None))
    assert summary["test_metric"] is None and math.isnan(summary["spearman"]) and summary["reward_peak_step"] == 6


def test_verl_reward_only_validation_is_the_test_metric(tmp_path):
    """verl 0.9.1 logs `val-core/<source>/reward/mean@<n>` when the reward function returns no `acc`."""
    path = tmp_path / "verl.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"step": s, "data": {"critic/score/mean": r, "val-core/gsm8k/reward/mean@4": r}})
            for s, r in REWARD.items()
        )
    )
    assert pick_metrics(read_log(path), None, None) == ("critic/score/mean", "val-core/gsm8k/reward/mean@4")


def test_a_wrong_metric_name_lists_the_likely_ones_first(tmp_path, cli):
    history = [
        {
            "step": s,
            "reward": r,
            **{f"clip_ratio/{k}": 0.0 for k in ("low", "high")},
            **{f"completions/{k}": 4.0 for k in ("mean_length", "max_length")},
        }
        for s, r in REWARD.items()
    ]
    history += [{"step": s, "eval_reward": t, "eval_loss": 0.3} for s, t in TEST.items()]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": history}))
    rc, _, err = cli("logs", path, "--run", "x", "--test", "eval_rewad", "--cache", tmp_path / "c")
    assert rc == 2
    listed = err[err.index("found metrics [") + len("found metrics [") :].split("]")[0]
    assert listed.startswith("'eval_reward', 'eval_loss'"), listed


def test_rlvr_runs_lists_a_run_that_only_has_a_log(tmp_path, cli):
    cache = tmp_path / "cache"
    assert cli("logs", write_verl(tmp_path), "--run", "logonly", "--cache", cache)[0] == 0
    rc, out, _ = cli("runs", "--cache", cache)
    assert rc == 0 and out.startswith("logonly\tnot analysed\t") and "logged values" in out
    rc, out, _ = cli("runs", "--cache", cache, "--json")
    (entry,) = json.loads(out)
    assert entry["run"] == "logonly" and entry["steps"] == [] and entry["logged_values"] > 0
