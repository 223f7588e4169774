"""Periodic rank-k substitution for Hugging Face `Trainer` / TRL runs: a `transformers.TrainerCallback`.

    from rlvr_core.training.callbacks import RankKSubstitutionCallback
    trainer = GRPOTrainer(model=..., ..., callbacks=[RankKSubstitutionCallback("path/to/base", every=25)])

Every `every` optimizer steps each linear weight of the blocks is set to W_base + rank-k(W - W_base)
(`training.periodic.PeriodicSubstitution`; rank 1, truncated by default) and training continues. The base
weights are read tensor by tensor from the base model's safetensors (or taken from a state dict) and
kept on the model's device in its dtype. Works with single-device and DDP/DeepSpeed ZeRO-1/2 training,
where each process holds whole weights; under FSDP full sharding or ZeRO-3 the parameters are shards,
which the callback detects and refuses (see docs/questions/substitution.md for the FSDP recipe used with verl).
This module imports transformers; the rest of `rlvr_core` does not need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..errors import UsageError
from ..readers.checkpoint import Checkpoint, check_same_tensors
from ..readers.naming import LINEAR, classify_tensor
from .periodic import PeriodicSubstitution


class RankKSubstitutionCallback(TrainerCallback):
    """Periodic rank-k substitution inside `Trainer.train()`.

    `base`: the base model folder (safetensors) or a mapping of parameter names to base weights.
    `every`: substitute after every `every`-th optimizer step (state.global_step % every == 0).
    `rank`, `mode`, `alpha`, `modules`: as in `substitution.substitute_rank_k_`.
    """

    def __init__(
        self,
        base: str | Path | Mapping[str, torch.Tensor],
        every: int,
        rank: int = 1,
        mode: str = "truncated",
        alpha: float = 1.0,
        modules: str | None = None,
    ) -> None:
        if every < 1:
            raise UsageError("RankKSubstitutionCallback", "every >= 1", str(every), "pass every=25 (for example)")
        self.base_source, self.every, self.rank, self.mode = base, every, rank, mode
        self.alpha, self.modules = alpha, modules
        self.periodic: PeriodicSubstitution | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        module = _unwrap(model)
        self.periodic = PeriodicSubstitution(
            load_base_linear(self.base_source, module), self.every, self.rank, self.mode, self.alpha, self.modules
        )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.periodic is not None:
            self.periodic.maybe_apply(_unwrap(model), state.global_step)


def load_base_linear(base: str | Path | Mapping[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The base weights of `model`'s linear block weights, on each parameter's device and dtype."""
    checkpoint = None if isinstance(base, Mapping) else Checkpoint(base)
    params = {
        name: param
        for name, param in model.named_parameters()
        if classify_tensor(name, tuple(param.shape)).kind == LINEAR
    }
    for name, param in params.items():
        if param.dim() != 2:
            raise UsageError(
                name,
                "a whole 2-D weight in this process",
                f"a sharded parameter {tuple(param.shape)}",
                "use the callback without FSDP full sharding / ZeRO-3, or the FSDP recipe in "
                "docs/questions/substitution.md",
            )
    if checkpoint is None:
        assert isinstance(base, Mapping)
        shapes, where = {n: tuple(t.shape) for n, t in base.items()}, "state dict"
    else:
        shapes, where = checkpoint.shapes, str(checkpoint.path)
    check_same_tensors(shapes, {n: tuple(p.shape) for n, p in params.items()}, params, where, "the model", "model's")
    out = {}
    for name, param in params.items():
        value = checkpoint.read_tensor(name) if checkpoint is not None else base[name]  # type: ignore[index]
        out[name] = torch.as_tensor(value).to(param.device, param.dtype)
    return out


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model under DDP / DeepSpeed wrappers (their parameter names carry a `module.` prefix)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model
