"""Against the real trainer: TRL 1.16.0's own GRPOTrainer trains the tiny model on CPU (seconds), then the
tool reads what TRL wrote: checkpoints, trainer_state.json and TensorBoard events, including a resumed run's
second events folder; and the substitution callback inside GRPOTrainer keeps every block update rank 1."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rlvr_core.cache import open_cache
from rlvr_core.readers.naming import LINEAR, classify_tensor

trl = pytest.importorskip("trl", reason="pip install -r requirements-dev.txt (trl)")

from rlvr_core.fixtures.trl_run import make_base, train_grpo  # noqa: E402


@pytest.fixture(scope="session")
def trl_run(tmp_path_factory):
    """4 steps (checkpoints at 2 and 4, eval every 2, TensorBoard), then resumed to step 6."""
    root = tmp_path_factory.mktemp("trl")
    train_grpo(root, steps=4, save_steps=2)
    return train_grpo(root, steps=6, save_steps=2, resume=True)


def test_analyze_reads_trls_checkpoints_and_dw_fits_succeed(trl_run, tmp_path, cli):
    cache = tmp_path / "cache"
    rc, out, err = cli("analyze", trl_run.run_dir, "--base", trl_run.base_dir, "--cache", cache, "--run", "trl")
    assert rc == 0, err
    con = open_cache(cache)
    assert [s for (s,) in con.execute("SELECT step FROM checkpoints ORDER BY step").fetchall()] == [0, 2, 4, 6]
    layouts = {r[0] for r in con.execute("SELECT layout FROM checkpoints WHERE step > 0").fetchall()}
    assert layouts == {"trl"}
    ok, total = con.execute(
        "SELECT count(*) FILTER (WHERE fit_status = 'ok'), count(*) FROM fits WHERE target = 'dW'"
    ).fetchone()
    assert total == 3 * 14 and ok / total >= 0.9, (ok, total)


def test_logs_pick_reward_and_test_by_default_from_trainer_state(trl_run, tmp_path, cli):
    cache = tmp_path / "cache"
    rc, out, err = cli("logs", trl_run.run_dir, "--run", "trl", "--cache", cache)
    assert rc == 0, err
    assert "reward 'reward'" in out and "test 'eval_reward'" in out and "warning" not in err
    row = (
        open_cache(cache)
        .execute("SELECT reward_metric, test_metric, log_format, test_metric_note FROM run_summary")
        .fetchone()
    )
    assert row == ("reward", "eval_reward", "trl", None)
    assert "checkpoint-6" in open_cache(cache).execute("SELECT log_path FROM run_summary").fetchone()[0]


def test_logs_merge_every_event_file_of_a_resumed_run(trl_run, tmp_path, cli):
    folders = sorted((trl_run.run_dir / "runs").iterdir())
    assert len(folders) >= 1 and len(list((trl_run.run_dir / "runs").rglob("events.out.tfevents.*"))) == 2
    cache = tmp_path / "cache"
    rc, out, err = cli("logs", trl_run.run_dir / "runs", "--run", "trl-tb", "--cache", cache)
    assert rc == 0, err
    assert "2 event files merged by step" in out and "reward 'train/reward'" in out and "test 'eval/reward'" in out
    con = open_cache(cache)
    steps = [
        s
        for (s,) in con.execute(
            "SELECT DISTINCT step FROM metrics WHERE name = 'train/reward' ORDER BY step"
        ).fetchall()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 5-6 live only in the resumed run's events
    evals = [s for (s,) in con.execute("SELECT step FROM metrics WHERE name = 'eval/reward' ORDER BY step").fetchall()]
    assert evals == [2, 4, 6]
    assert con.execute("SELECT n_log_files FROM run_summary").fetchone()[0] == 2


def test_a_run_without_an_eval_set_has_no_test_metric_and_says_why(tmp_path, cli):
    run = train_grpo(tmp_path / "noeval", steps=2, save_steps=2, eval_steps=None)
    cache = tmp_path / "cache"
    rc, out, err = cli("logs", run.run_dir, "--run", "noeval", "--cache", cache)
    assert rc == 0 and "no test metric" in out
    warning = err.strip().splitlines()[-1]  # (the training above wrote progress bars to stderr too)
    assert warning.startswith("warning: ") and "no held-out accuracy or reward" in warning and "--test KEY" in warning
    note = open_cache(cache).execute("SELECT test_metric, test_metric_note FROM run_summary").fetchone()
    assert note[0] is None and "pass --test KEY" in note[1]
    rc, _, err = cli("logs", run.run_dir, "--run", "noeval", "--test", "eval_acc", "--cache", cache)
    assert rc == 2 and "a metric named 'eval_acc' (--test)" in err


def test_substitution_callback_inside_grpotrainer_keeps_updates_rank_one(tmp_path):
    from rlvr_core.training.callbacks import RankKSubstitutionCallback

    root = tmp_path / "cb"
    run = train_grpo(
        root, steps=4, save_steps=2, eval_steps=None, callbacks=[RankKSubstitutionCallback(make_base(root), every=2)]
    )
    base = load_file(str(run.base_dir / "model.safetensors"))
    for step in (2, 4):
        weights = load_file(str(run.run_dir / f"checkpoint-{step}" / "model.safetensors"))
        ratios = []
        for name, w in weights.items():
            if classify_tensor(name, tuple(w.shape)).kind == LINEAR:
                s = torch.linalg.svdvals(w.double() - base[name].double())
                ratios.append(float(s[1] / s[0]))
        assert len(ratios) == 14 and max(ratios) < 1e-5, (step, max(ratios))
