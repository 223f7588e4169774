"""The demo's pieces: task and verifier, tokenizer, GRPO math, and reproducibility of training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlvr_core.demo.grpo import GRPOConfig, clipped_loss, group_advantages, train
from rlvr_core.demo.policy import completion_mask
from rlvr_core.demo.warmup import WarmupConfig, warm_up
from rlvr_core.math import arithmetic
from rlvr_core.readers.trainlog import read_log
from rlvr_core.training.periodic import PeriodicSubstitution, linear_state


def test_splits_are_disjoint_seeded_and_the_verifier_is_exact():
    s = arithmetic.make_splits(3)
    ids = [{p.id for p in part} for part in (s.pool, s.test, s.val)]
    assert [len(x) for x in ids] == [512, 1000, 256]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert arithmetic.make_splits(3) == s and arithmetic.make_splits(4) != s
    p = arithmetic.Problem(7, 512)
    assert (p.prompt, p.answer) == ("007+512=", "0519")
    assert arithmetic.verify("0519", "0519") and arithmetic.verify(" 0519\n", "0519")
    assert not arithmetic.verify("519", "0519") and not arithmetic.verify("05190", "0519")
    held = {q.id for q in s.test} | {q.id for q in s.val}
    stream = arithmetic.stream(0, s)
    assert not any(next(stream).id in held for _ in range(5000))


def test_group_advantages_and_clipped_loss():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    adv = group_advantages(rewards)
    assert torch.allclose(adv[0], torch.tensor([1.0, -1.0, -1.0, 1.0]) / (0.5774 + 1e-4) * 0.5, atol=1e-3)
    assert torch.equal(adv[1], torch.zeros(4))  # all equal: no signal
    logp_old = torch.zeros(2, 3)
    logp = torch.log(torch.tensor([[1.5, 1.0, 1.0], [0.5, 1.0, 1.0]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss, clipped = clipped_loss(logp, logp_old, torch.tensor([1.0, -1.0]), mask, clip=0.2)
    # token terms: min(1.5, 1.2)=1.2, 1, (masked), then -max(0.5, 0.8)=-0.8, -1, -1
    assert float(loss) == pytest.approx(-(1.2 + 1.0 - 0.8 - 1.0 - 1.0) / 5)
    assert clipped == pytest.approx(2 / 5)
    eos = 2
    m = completion_mask(torch.tensor([[5, eos, 0, 0], [5, 6, 7, 8]]), eos)
    assert m.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def _tiny():
    from rlvr_core.demo.build import ModelSize, build_model

    torch.manual_seed(0)
    return build_model(ModelSize(layers=2, hidden=32, heads=2, intermediate=64))


def _short_training(folder: Path, every: int | None):
    tokenizer, model = _tiny()
    splits = arithmetic.make_splits(0, n_pool=64, n_test=50, n_val=20)
    warm_up(model, tokenizer, splits, WarmupConfig(max_steps=6, eval_every=3, batch_size=16, target_accuracy=1.1))
    sub = PeriodicSubstitution(linear_state(model), every=every) if every else None
    config = GRPOConfig(steps=4, prompts_per_step=4, group_size=4, checkpoint_steps=(2, 4))
    history = train(model, tokenizer, splits, config, folder, sub, base_accuracy=0.0)
    return history, model


def test_training_is_reproducible_and_writes_trl_checkpoints(tmp_path):
    first, model_a = _short_training(tmp_path / "a", None)
    second, model_b = _short_training(tmp_path / "b", None)
    assert first == second
    for (name, a), (_, b) in zip(model_a.named_parameters(), model_b.named_parameters()):
        assert torch.equal(a, b), name
    state = json.loads((tmp_path / "a" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["log_history"] == first
    assert [r["step"] for r in state["log_history"] if "eval_accuracy" in r] == [0, 2, 4]
    assert {"reward", "reward_std", "loss", "clip_ratio"} <= set(state["log_history"][1])
    assert read_log(tmp_path / "a").series("reward").keys() == {1, 2, 3, 4}
    assert not list(tmp_path.glob("a/.*tmp*"))  # no temporary folder left behind


def test_periodic_substitution_marks_its_steps(tmp_path):
    history, _ = _short_training(tmp_path / "s", every=2)
    assert [r["step"] for r in history if r.get("rank_k_substitution")] == [2, 4]
    with pytest.raises(ValueError, match="every must be >= 1"):
        PeriodicSubstitution({}, every=0)


def test_the_warm_up_progress_counts_steps_while_the_accuracy_is_on_its_plateau() -> None:
    from rlvr_core.demo.warmup import warmup_fraction

    config = WarmupConfig()
    assert warmup_fraction(300, 0.008, config) == pytest.approx(0.6)  # was 0.008 / 0.35: "about 88 min left"
    assert warmup_fraction(350, 0.30, config) == pytest.approx(0.30 / 0.35)  # the accuracy is further along
    assert warmup_fraction(900, 0.10, config) == 0.99  # past the usual length: not done until it is
    assert warmup_fraction(3, 0.0, WarmupConfig(max_steps=6)) == pytest.approx(0.5)
