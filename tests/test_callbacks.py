"""The periodic rank-k substitution callback inside a real `transformers.Trainer` run (tiny Llama, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlvr_core.errors import TensorMismatchError, UsageError
from rlvr_core.math import arithmetic
from rlvr_core.training.periodic import linear_state


def _tiny_model(seed: int = 0):
    from rlvr_core.demo.build import ModelSize, build_model

    torch.manual_seed(seed)
    return build_model(ModelSize(layers=2, hidden=32, heads=2, intermediate=64))


def _dataset(tokenizer, n: int = 32) -> list[dict]:
    splits = arithmetic.make_splits(0, n_pool=n, n_test=1, n_val=1)
    rows = []
    for p in splits.pool:
        ids = [tokenizer.bos_token_id, *tokenizer(p.prompt + p.answer)["input_ids"], tokenizer.eos_token_id]
        rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(ids)})
    return rows


def _train(tmp_path: Path, callback, steps: int):
    from transformers import Trainer, TrainingArguments

    tokenizer, model = _tiny_model()
    base = linear_state(model)
    base_dir = tmp_path / "base"
    model.save_pretrained(base_dir)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=_dataset(tokenizer), callbacks=[callback(base_dir)] if callback else []
    )
    trainer.train()
    return model, base


def _second_sv_ratio(model, base) -> float:
    worst = 0.0
    for name, p in model.named_parameters():
        if name in base:
            s = torch.linalg.svdvals((p.detach() - base[name]).double())
            worst = max(worst, float(s[1] / s[0]))
    return worst


def test_callback_makes_every_block_update_rank_one_at_its_steps(tmp_path):
    from rlvr_core.training.callbacks import RankKSubstitutionCallback

    model, base = _train(tmp_path, lambda base_dir: RankKSubstitutionCallback(base_dir, every=2), steps=4)
    assert _second_sv_ratio(model, base) < 1e-5  # step 4 is a substitution step
    plain, base2 = _train(tmp_path / "plain", None, steps=4)
    assert _second_sv_ratio(plain, base2) > 0.05  # without the callback the updates are not rank 1


def test_callback_rejects_a_wrong_base(tmp_path):
    from rlvr_core.training.callbacks import RankKSubstitutionCallback, load_base_linear

    with pytest.raises(UsageError, match="every >= 1"):
        RankKSubstitutionCallback(tmp_path, every=0)
    _, model = _tiny_model()
    wrong = {name: torch.zeros(3, 3) for name in linear_state(model)}
    with pytest.raises(TensorMismatchError, match=r"shape \(32, 32\) \(the model's\).*found shape \(3, 3\)"):
        load_base_linear(wrong, model)
    with pytest.raises(TensorMismatchError, match="no such tensor"):
        load_base_linear({}, model)
