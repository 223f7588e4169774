"""Sampling, log-probabilities and greedy accuracy for a Hugging Face causal LM on the demo's task.

Prompts of one batch have the same length (the arithmetic prompts are fixed width), so no padding or
attention masks are needed: `<bos>` + prompt characters, then up to `max_new` generated tokens. Tokens
after the first `<eos>` are replaced by `<pad>` and masked out. Generation reuses the key/value cache.
Math on tensors: no files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def encode_prompts(tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """[B, L] token ids: `<bos>` + the characters of each prompt (all prompts of equal length)."""
    ids = [[tokenizer.bos_token_id, *tokenizer(p, add_special_tokens=False)["input_ids"]] for p in prompts]
    if len({len(row) for row in ids}) > 1:
        raise ValueError("prompts of one batch must have the same length (the demo task is fixed width)")
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def generate(
    model,
    prompt_ids: torch.Tensor,
    max_new: int,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """[B, max_new] completions: greedy when `temperature` is 0, else sampled at `temperature`."""
    out = model(input_ids=prompt_ids, use_cache=True)
    cache, logits = out.cache, out.logits[:, -1]
    tokens, finished = [], torch.zeros(prompt_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new):
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        finished |= nxt == eos_id
        if bool(finished.all()):
            break
        out = model(input_ids=nxt[:, None], cache=cache, use_cache=True)
        cache, logits = out.cache, out.logits[:, -1]
    result = torch.stack(tokens, dim=1)
    if result.shape[1] < max_new:
        result = torch.cat([result, torch.full((result.shape[0], max_new - result.shape[1]), pad_id)], dim=1)
    return result


def completion_mask(completions: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B, T] float mask: 1 up to and including the first `<eos>`, 0 after it."""
    is_eos = (completions == eos_id).long()
    after = (torch.cumsum(is_eos, dim=1) - is_eos) > 0
    return (~after).float()


def completion_logprobs(
    model, prompt_ids: torch.Tensor, completions: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """[B, T] log-probability of each completion token under `model` (at `temperature`), with grad."""
    ids = torch.cat([prompt_ids, completions], dim=1)
    logits = model(input_ids=ids).logits[:, prompt_ids.shape[1] - 1 : -1].float()
    if temperature not in (0, 1):
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, completions[..., None]).squeeze(-1)


def decode(tokenizer, completions: torch.Tensor) -> list[str]:
    """The text of each completion, special tokens dropped."""
    return tokenizer.batch_decode(completions.tolist(), skip_special_tokens=True)


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new: int, batch_size: int = 500) -> list[str]:
    """Greedy completions of `prompts` as text."""
    was_training = model.training
    model.eval()
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        ids = encode_prompts(tokenizer, prompts[start : start + batch_size])
        out = generate(model, ids, max_new, tokenizer.eos_token_id, tokenizer.pad_token_id, temperature=0)
        texts += decode(tokenizer, out)
    model.train(was_training)
    return texts
