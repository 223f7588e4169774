"""Stage 2 of the demo: GRPO on the arithmetic task (Shao et al. 2024, DeepSeekMath, eq. 3; token-level
loss as in DAPO, Yu et al. 2025; no KL term, as in DAPO and Dr. GRPO).

Each step draws `prompts_per_step` prompts from the finite pool (reshuffled every pass), samples
`group_size` completions per prompt at `temperature`, scores them with the verifier (reward 1 or 0) and
normalises the rewards within each group: A_i = (r_i - mean(r)) / (std(r) + eps), 0 for a group whose
rewards are all equal. The loss is the clipped surrogate of PPO (Schulman et al. 2017)

    L = - sum_t min(rho_t A, clip(rho_t, 1 - eps, 1 + eps) A) / (number of completion tokens),

rho_t = pi(o_t) / pi_old(o_t), over `minibatches` Adam steps on the same samples (so every minibatch after
the first is off-policy and the clipping acts). With `substitution` set, `PeriodicSubstitution.maybe_apply`
runs after every step. Checkpoints and `trainer_state.json` are written in TRL's layout by `trl_files`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..math import arithmetic
from ..training.periodic import PeriodicSubstitution
from .policy import completion_logprobs, completion_mask, decode, encode_prompts, generate
from .trl_files import save_checkpoint
from .warmup import accuracy


@dataclass(frozen=True, kw_only=True)
class GRPOConfig:
    """GRPO settings of the demo."""

    steps: int = 200
    """Optimizer steps (each: one batch of prompts, `minibatches` Adam updates)."""
    prompts_per_step: int = 32
    """Prompts drawn from the pool per step."""
    group_size: int = 8
    """Completions sampled per prompt (G)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts."""
    lr: float = 1e-4
    """Adam learning rate (constant)."""
    clip: float = 0.2
    """PPO ratio clipping epsilon."""
    minibatches: int = 2
    """Adam updates per step, each on a slice of the step's samples."""
    checkpoint_steps: tuple[int, ...] = (10, 20, 30, 40, 50, 75, 100, 125, 150, 175, 200)
    """Steps at which a checkpoint is saved and the held-out test accuracy measured."""
    seed: int = 0
    """Seed of the prompt order and of the sampling."""


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """[P, G] rewards -> group-normalised advantages (0 where a group's rewards are all equal)."""
    mean, std = rewards.mean(dim=1, keepdim=True), rewards.std(dim=1, keepdim=True)
    return torch.where(std > 0, (rewards - mean) / (std + eps), torch.zeros_like(rewards))


def clipped_loss(
    logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, float]:
    """Token-level clipped surrogate loss and the fraction of tokens whose ratio was clipped."""
    ratio = torch.exp(logp - logp_old)
    adv = advantages[:, None]
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    loss = -(surrogate * mask).sum() / mask.sum().clamp(min=1)
    clipped = ((ratio - 1).abs() > clip).float()
    return loss, float((clipped * mask).sum() / mask.sum().clamp(min=1))


def train(
    model,
    tokenizer,
    splits: arithmetic.Splits,
    config: GRPOConfig,
    out_dir: Path,
    substitution: PeriodicSubstitution | None = None,
    base_accuracy: float | None = None,
    progress: Callable[[str, float | None], None] | None = None,
) -> list[dict]:
    """Run GRPO on `model` in place, writing `out_dir/checkpoint-<N>/`; returns the log history."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    order = _prompt_order(len(splits.pool), config.prompts_per_step, config.steps, config.seed)
    history: list[dict] = []
    if base_accuracy is not None:
        history.append({"step": 0, "epoch": 0.0, "eval_accuracy": base_accuracy})
    for step in range(1, config.steps + 1):
        batch = [splits.pool[i] for i in order[step - 1]]
        record = _step(model, tokenizer, batch, config, optimizer, generator)
        record |= {
            "step": step,
            "epoch": round(step * config.prompts_per_step / len(splits.pool), 4),
            "learning_rate": config.lr,
        }
        if substitution is not None and substitution.maybe_apply(model, step):
            record["rank_k_substitution"] = 1.0
        history.append(record)
        if step in config.checkpoint_steps:
            test_acc = accuracy(model, tokenizer, splits.test)
            history.append(
                {
                    "step": step,
                    "epoch": record["epoch"],
                    "eval_accuracy": test_acc,
                    "eval_pool_accuracy": accuracy(model, tokenizer, splits.pool),
                }
            )
            save_checkpoint(model, tokenizer, out_dir / f"checkpoint-{step}", history, step, config.steps)
            if progress:
                progress(
                    f"step {step}: reward {_recent_reward(history):.3f}, test accuracy {test_acc:.3f}",
                    step / config.steps,
                )
    return history


def _step(model, tokenizer, batch, config: GRPOConfig, optimizer, generator) -> dict:
    g = config.group_size
    prompts = encode_prompts(tokenizer, [p.prompt for p in batch for _ in range(g)])
    model.eval()
    completions = generate(
        model,
        prompts,
        arithmetic.ANSWER_DIGITS + 1,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        config.temperature,
        generator,
    )
    texts = decode(tokenizer, completions)
    rewards = torch.tensor(
        [arithmetic.reward(t, p.answer) for t, p in zip(texts, (p for p in batch for _ in range(g)))]
    )
    advantages = group_advantages(rewards.view(len(batch), g)).reshape(-1)
    mask = completion_mask(completions, tokenizer.eos_token_id)
    with torch.no_grad():
        logp_old = completion_logprobs(model, prompts, completions, config.temperature)
    model.train()
    losses, clip_fracs = [], []
    for part in torch.arange(len(prompts)).chunk(config.minibatches):
        logp = completion_logprobs(model, prompts[part], completions[part], config.temperature)
        loss, clipped = clipped_loss(logp, logp_old[part], advantages[part], mask[part], config.clip)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        clip_fracs.append(clipped)
    grouped = rewards.view(len(batch), g)
    return {
        "reward": round(float(rewards.mean()), 6),
        "reward_std": round(float(grouped.std(dim=1).mean()), 6),
        "loss": round(float(np.mean(losses)), 6),
        "clip_ratio": round(float(np.mean(clip_fracs)), 6),
        "completions/mean_length": round(float(mask.sum(dim=1).mean()), 4),
        "frac_reward_zero_std": round(float((grouped.std(dim=1) == 0).float().mean()), 4),
    }


def _prompt_order(n_pool: int, per_step: int, steps: int, seed: int) -> list[np.ndarray]:
    """Prompt indices per step: passes over the pool, each in a fresh seeded permutation."""
    rng = np.random.default_rng(seed)
    flat = np.concatenate([rng.permutation(n_pool) for _ in range(-(-steps * per_step // n_pool))])
    return [flat[i * per_step : (i + 1) * per_step] for i in range(steps)]


def _recent_reward(history: list[dict], window: int = 10) -> float:
    rewards = [r["reward"] for r in history if "reward" in r][-window:]
    return float(np.mean(rewards)) if rewards else float("nan")
