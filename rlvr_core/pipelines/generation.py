"""Prompts and generation for evaluation: vLLM when it is importable and a GPU is present, else
transformers' `generate` (batched, left-padded, CUDA or CPU). Both return, per problem, `n` completion
texts and the number of generated tokens, so results do not depend on the backend's format.

Prompts: math sets get "Please reason step by step, and put your final answer within \\boxed{}." after
the question (or the row's own `instruction`), inside the model's chat template when it has one;
multiple-choice sets list the options as "A) ..." and ask for the letter in \\boxed{}; the demo's
arithmetic task is its plain prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..readers.datasets import EvalProblem

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Answer with the letter of the correct option, and put it within \\boxed{}."
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """How completions are generated (the sampling flags of `rlvr evaluate` / `rlvr compare`)."""

    n: int = 1
    """Samples per problem."""
    temperature: float = 0.0
    """0: greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1: off)."""
    max_new_tokens: int = 1024
    """Longest completion."""
    batch_size: int = 64
    """Prompts per `generate()` call (changes speed only, never results)."""
    seed: int = 0
    """Seed of the sampling."""


def prompt_body(problem: EvalProblem, kind: str) -> str:
    """The user's message for `problem` of a set of `kind` (the question, the options, the instruction)."""
    if kind == "exact":
        return problem.question
    if kind == "choice":
        options = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(problem.choices or ()))
        return f"{problem.question}\n\n{options}\n\n{problem.instruction or CHOICE_INSTRUCTION}"
    return f"{problem.question}\n{problem.instruction or MATH_INSTRUCTION}"


def build_prompt(tokenizer, problem: EvalProblem, kind: str) -> str:
    """The text the model is given for `problem` of a set of `kind`: `prompt_body` inside the chat
    template when the tokenizer has one (the same text a TRL trainer builds from a conversational prompt)."""
    if kind == "exact":
        return problem.question
    body = prompt_body(problem, kind)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
        )
    return f"Question: {body}\nAnswer:"


def choose_backend(device: str) -> str:
    """`vllm` when importable and the device is a GPU, else `transformers`."""
    if device.startswith("cuda"):
        try:
            import vllm  # noqa: F401  (only whether it is importable)

            return "vllm"
        except ImportError:
            pass
    return "transformers"


def generate_transformers(
    model,
    tokenizer,
    prompts: list[str],
    sampling: Sampling,
    device: str,
    progress: Callable[[int, int, float], None] | None = None,
) -> list[tuple[list[str], int]]:
    """Per prompt: its `n` completions and their generated-token count, with `model.generate`."""
    import torch

    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(sampling.seed)
    results: list[tuple[list[str], int]] = []
    started, tokens = time.perf_counter(), 0
    for start in range(0, len(prompts), sampling.batch_size):
        batch = prompts[start : start + sampling.batch_size]
        has_template = bool(getattr(tokenizer, "chat_template", None))
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=not has_template).to(device)
        kwargs = (
            {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
            if sampling.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=sampling.n,
                pad_token_id=pad,
                **kwargs,
            )
        new = out[:, enc["input_ids"].shape[1] :].cpu()
        lengths = _lengths(new, tokenizer.eos_token_id, pad)
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        for i in range(len(batch)):
            rows = slice(i * sampling.n, (i + 1) * sampling.n)
            results.append((texts[rows], int(lengths[rows].sum())))
        tokens += int(lengths.sum())
        if progress:
            progress(len(results), len(prompts), tokens / max(time.perf_counter() - started, 1e-9))
    return results


def generate_vllm(model_dir: str, prompts: list[str], sampling: Sampling) -> list[tuple[list[str], int]]:
    """The same with vLLM (GPU)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, seed=sampling.seed)
    params = SamplingParams(
        n=sampling.n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_new_tokens,
        seed=sampling.seed,
    )
    outputs = llm.generate(prompts, params)
    return [([c.text for c in o.outputs], sum(len(c.token_ids) for c in o.outputs)) for o in outputs]


def _lengths(new, eos_id: int | None, pad_id: int):
    """Generated tokens per row: up to and including the first eos (pads after it not counted)."""
    import torch

    stop = (new == eos_id) if eos_id is not None else torch.zeros_like(new, dtype=torch.bool)
    after = (torch.cumsum(stop.long(), dim=1) - stop.long()) > 0
    return ((~after) & ~((new == pad_id) & ~stop)).sum(dim=1)
