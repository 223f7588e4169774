"""Checkpoint folders in the layout TRL (transformers' Trainer) writes: `checkpoint-<N>/` holding
`model.safetensors`, `config.json`, `generation_config.json`, the tokenizer files and `trainer_state.json`
whose `log_history` lists every logged record so far (`{"step": N, "reward": ...}`, eval records with
`eval_*` keys). Each folder is written under a temporary name and published with `os.replace` (`atomic`), so a
killed run leaves no half-written checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..cache.atomic import MARKER, publishing


def trainer_state(history: list[dict], step: int, max_steps: int) -> dict:
    """A `trainer_state.json` body (the fields transformers' `TrainerState` saves)."""
    epoch = max((r.get("epoch", 0.0) for r in history), default=0.0)
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": epoch,
        "eval_steps": None,
        "global_step": step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": 1,
        "max_steps": max_steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": 1,
        "save_steps": None,
        "stateful_callbacks": {},
        "total_flos": 0,
        "train_batch_size": None,
        "trial_name": None,
        "trial_params": None,
    }


def save_checkpoint(model, tokenizer, folder: Path, history: list[dict], step: int, max_steps: int) -> Path:
    """Write `folder` (model, tokenizer, trainer_state.json) atomically; replaces an older one."""
    with publishing(Path(folder), marker=MARKER) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state(history, step, max_steps), indent=2) + "\n")
    return Path(folder)


def save_model(model, tokenizer, folder: Path) -> Path:
    """Write a plain model folder (the base) atomically."""
    with publishing(Path(folder), marker=MARKER) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(folder)
