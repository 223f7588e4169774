"""GRPO on the real model with TRL's own trainer (`trl.GRPOTrainer`, written against TRL 1.16.0): the
prompts are conversations (TRL applies the model's chat template, the same text `generation.build_prompt`
gives `rlvr compare`), the reward is 1 for a completion whose answer math-verify accepts and 0 otherwise
(`math.grading.grade`), and TRL's periodic evaluation samples completions for a slice of the held-out set
and logs their mean reward as `eval_reward`. Checkpoints are TRL's (`checkpoint-<N>/` with
`trainer_state.json`); the periodic rank-1 twin adds `training.callbacks.RankKSubstitutionCallback`.

GRPO (Shao et al. 2024, "DeepSeekMath"): per prompt a group of completions, advantages = rewards minus
the group mean, divided by the group's std; here without a KL term (beta 0), as in DAPO (Yu et al. 2025).
Imports trl, datasets and torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..math.grading import grade
from ..pipelines.generation import prompt_body
from ..readers.datasets import EvalProblem
from .wordproblems import INSTRUCTION, WordProblem


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """One GRPO run of the real-model demo (`RealDemoConfig` fills it in)."""

    steps: int
    """Optimizer steps."""
    save_steps: int
    """A checkpoint every this many steps (and the last)."""
    prompts_per_step: int
    """Prompts per step; each gets `num_generations` completions."""
    num_generations: int
    """Completions per prompt (the GRPO group)."""
    max_completion_length: int
    """Longest completion, in tokens."""
    temperature: float
    """Sampling temperature of training and of TRL's periodic evaluation."""
    learning_rate: float
    """AdamW learning rate (constant)."""
    eval_generations: int
    """Completions per held-out problem in TRL's periodic evaluation (`eval_reward`)."""
    seed: int
    """Seed of TRL's sampling and data order."""


def as_problem(problem: WordProblem, index: int) -> EvalProblem:
    return EvalProblem(f"wp-{index}", problem.question, problem.answer, None, INSTRUCTION)


def conversation(problem: WordProblem) -> list[dict]:
    """The prompt as TRL's conversational format: one user message."""
    return [{"role": "user", "content": prompt_body(as_problem(problem, 0), "math")}]


def correct_reward(completions: list, answer: list[str], **_) -> list[float | None]:
    """1.0 when math-verify accepts the completion's answer (its last \\boxed{}, else its final answer)."""
    texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
    return [float(grade(text, gold)) for text, gold in zip(texts, answer, strict=True)]


def train(
    base: Path,
    out: Path,
    pool: list[WordProblem],
    held_out: list[WordProblem],
    settings: TrainSettings,
    callbacks: Sequence = (),
    progress: Callable[[str, float], None] = lambda m, f: None,
) -> list[dict]:
    """Train from `base` into `out` (TRL's `output_dir`); returns TRL's log history."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: logs[k] for k in ("reward", "eval_reward") if logs and k in logs}
            text = ", ".join(f"{k} {v:.3f}" for k, v in shown.items())
            progress(
                f"step {state.global_step}/{settings.steps}" + (f": {text}" if text else ""),
                state.global_step / settings.steps,
            )

    def rows(problems: list[WordProblem]) -> Dataset:
        return Dataset.from_list([{"prompt": conversation(p), "answer": p.answer} for p in problems])

    args = GRPOConfig(
        output_dir=str(out),
        max_steps=settings.steps,
        save_steps=settings.save_steps,
        save_only_model=True,
        logging_steps=1,
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        beta=0.0,
        eval_strategy="steps",
        eval_steps=settings.save_steps,
        num_generations_eval=settings.eval_generations,
        per_device_eval_batch_size=len(held_out) * settings.eval_generations,
        use_cpu=True,
        bf16=False,
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=True,
        report_to=[],
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(base),
        reward_funcs=correct_reward,
        args=args,
        train_dataset=rows(pool),
        eval_dataset=rows(held_out),
        processing_class=AutoTokenizer.from_pretrained(base),
        callbacks=[*callbacks, Report()],
    )
    trainer.remove_callback(PrinterCallback)  # its raw log dicts on stdout; `Report` says what matters
    trainer.train()
    return list(trainer.state.log_history)
