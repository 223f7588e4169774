"""Stage 1 of the demo: supervised warm-up of the tiny model to a partial accuracy (the RL base).

Teacher forcing on `<bos>a+b=` + answer + `<eos>`, the loss on the answer tokens only, AdamW. Addition
is learnt in a sudden jump (the loss sits on a plateau, then the carries click): at a constant rate the
accuracy goes from ~0 to over 90% within a few hundred steps, so a base "at 40%" would be a snapshot of
that jump. So the rate is `lr` on the plateau and drops to `gentle_lr` as soon as the validation
accuracy reaches `gentle_from`; from then on the accuracy is checked every `gentle_eval_every` steps and
training stops at the first check that reaches `target_accuracy` (or after `max_steps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

import torch

from ..math import arithmetic
from .policy import encode_prompts, greedy_answers

TYPICAL_STEPS = 500
"""Warm-up steps the default settings usually take (300-620 over seeds), for the progress fraction."""


@dataclass(frozen=True, kw_only=True)
class WarmupConfig:
    """Supervised warm-up settings."""

    lr: float = 1e-3
    """AdamW learning rate on the plateau."""
    gentle_lr: float = 1e-4
    """Learning rate once the validation accuracy has reached `gentle_from`."""
    gentle_from: float = 0.05
    """Validation accuracy at which the rate drops to `gentle_lr`."""
    batch_size: int = 64
    """Problems per step."""
    max_steps: int = 3000
    """Stop here even if the target accuracy was not reached."""
    eval_every: int = 50
    """Steps between validation checks on the plateau."""
    gentle_eval_every: int = 10
    """Steps between validation checks at the gentle rate."""
    target_accuracy: float = 0.35
    """Stop at the first check whose greedy validation accuracy reaches this."""
    seed: int = 0
    """Seed of the problem stream."""


@dataclass(frozen=True)
class WarmupResult:
    steps: int
    val_accuracy: float
    history: list[tuple[int, float]]


def answer_ids(tokenizer, problems: list[arithmetic.Problem]) -> torch.Tensor:
    """[B, ANSWER_DIGITS + 1] token ids of each answer followed by `<eos>`."""
    ids = [[*tokenizer(p.answer, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id] for p in problems]
    return torch.tensor(ids, dtype=torch.long)


def warm_up(
    model,
    tokenizer,
    splits: arithmetic.Splits,
    config: WarmupConfig,
    progress: Callable[[str, float | None], None] | None = None,
) -> WarmupResult:
    """Train `model` in place until the validation accuracy reaches the target."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    problems = arithmetic.stream(config.seed, splits)
    history: list[tuple[int, float]] = []
    every = config.eval_every
    model.train()
    for step in range(1, config.max_steps + 1):
        batch = list(islice(problems, config.batch_size))
        prompts = encode_prompts(tokenizer, [p.prompt for p in batch])
        answers = answer_ids(tokenizer, batch)
        ids = torch.cat([prompts, answers], dim=1)
        logits = model(input_ids=ids).logits[:, prompts.shape[1] - 1 : -1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), answers.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == config.max_steps:
            acc = accuracy(model, tokenizer, splits.val)
            history.append((step, acc))
            if progress:
                progress(
                    f"warm-up step {step}: loss {loss.item():.3f}, validation accuracy {acc:.3f}",
                    warmup_fraction(step, acc, config),
                )
            if acc >= config.target_accuracy:
                break
            if acc >= config.gentle_from and every != config.gentle_eval_every:
                every = config.gentle_eval_every
                for group in optimizer.param_groups:
                    group["lr"] = config.gentle_lr
    return WarmupResult(steps=step, val_accuracy=history[-1][1], history=history)


def accuracy(model, tokenizer, problems: list[arithmetic.Problem]) -> float:
    """Greedy exact-match accuracy on `problems`."""
    texts = greedy_answers(model, tokenizer, [p.prompt for p in problems], arithmetic.ANSWER_DIGITS + 1)
    return sum(arithmetic.verify(t, p.answer) for t, p in zip(texts, problems)) / len(problems)


def warmup_fraction(step: int, accuracy: float, config: WarmupConfig) -> float:
    """How far the warm-up is, for the job's progress and ETA: the larger of the accuracy's way to the
    target and the steps' way to the usual length (on the plateau the accuracy stays near 0 for hundreds
    of steps, so alone it promised an hour for a 3-minute demo), below 1 until the warm-up is done."""
    usual = min(TYPICAL_STEPS, config.max_steps)
    return min(max(accuracy / config.target_accuracy, step / usual), 0.99)
