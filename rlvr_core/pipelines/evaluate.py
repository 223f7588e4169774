"""`rlvr evaluate`: generate on an evaluation set, grade, and store the results in the cache.

Results go to the cache's evaluation folder of `eval_id` (`Cache.write_eval`, published atomically): one row in
`evaluations` and one per (problem, sample) in `eval_samples`. `eval_id` hashes the model's weights
fingerprint, the set's content and every sampling setting, so an identical request is answered from
the cache. accuracy = pass@1 averaged over the n samples; pass_at_k = the unbiased pass@k for k = n.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from ..cache import Cache
from ..errors import CheckpointFormatError
from ..math import grading
from ..readers.checkpoint import Checkpoint
from ..readers.datasets import EvalSet
from ..readers.layout import locate_step
from ..system.dataroots import guard
from .generation import Sampling, build_prompt, choose_backend, generate_transformers, generate_vllm
from .substitute import RECIPE_FILE


@dataclass(kw_only=True)
class EvalRequest:
    """One evaluation: a model folder on a set, with its sampling and what it is in its run."""

    model_dir: Path
    """The Hugging Face model folder to generate with."""
    dataset: EvalSet
    """The problems (`readers.datasets.load_dataset`)."""
    sampling: Sampling = field(default_factory=Sampling)
    """Samples per problem, temperature, top-p, lengths, batch size, seed."""
    cache: Path = Path("cache")
    """The cache the results go to (and are answered from when identical)."""
    device: str = "cpu"
    """A resolved device: `cpu`, `cuda` or `cuda:N`."""
    run: str | None = None
    """The run it belongs to (default: from a substituted model's recipe, else the parent folder's name)."""
    step: int | None = None
    """Its step (default: from the recipe, else from the folder's name)."""
    variant: str | None = None
    """`base`, `full` or `rank-<k>` (default: from the recipe, else `full`)."""
    rank: int | None = None
    """The substitution rank of a `rank-<k>` variant (default: from the recipe)."""
    mode: str | None = None
    """The substitution mode of a `rank-<k>` variant (default: from the recipe)."""


def describe(request: EvalRequest) -> dict:
    """run, step, variant, rank, mode: the request's, else the recipe's, else guessed from the path."""
    recipe_file = Path(request.model_dir) / RECIPE_FILE
    recipe = json.loads(recipe_file.read_text()) if recipe_file.is_file() else {}
    located = locate_step(request.model_dir)
    guessed_run = located[1].name if located else Path(request.model_dir).resolve().name
    return {
        "run": request.run or recipe.get("run") or guessed_run,
        "step": request.step if request.step is not None else recipe.get("step", located and located[0]),
        "variant": request.variant or (f"rank-{recipe['rank']}" if recipe else "full"),
        "rank": request.rank if request.rank is not None else recipe.get("rank"),
        "mode": request.mode or recipe.get("mode"),
    }


def eval_id(request: EvalRequest, fingerprint: str) -> str:
    sampling = {k: v for k, v in asdict(request.sampling).items() if k != "batch_size"}  # batching changes no result
    key = json.dumps([fingerprint, request.dataset.name, request.dataset.digest(), sampling])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def evaluate(request: EvalRequest, progress: Callable[[int, int, float], None] | None = None) -> dict:
    """Run (or fetch from the cache) one evaluation; returns its `evaluations` row."""
    fingerprint = Checkpoint(request.model_dir).fingerprint
    ident = eval_id(request, fingerprint)
    cache = Cache(request.cache)
    row = cache.eval_row(ident)
    if row is not None:
        return row
    meta, started = describe(request), dt.datetime.now(dt.UTC)
    completions, backend, gen_seconds = _generate(request, progress)
    finished = dt.datetime.now(dt.UTC)
    samples, per_problem = _grade(request.dataset, completions, ident)
    n, seconds = request.sampling.n, (finished - started).total_seconds()
    tokens = sum(t for _, t in completions)
    row = {
        "eval_id": ident,
        **{k: meta[k] for k in ("run", "step", "variant", "rank", "mode")},
        "dataset": request.dataset.name,
        "n": n,
        "temperature": request.sampling.temperature,
        "accuracy": sum(c for c in per_problem) / (n * len(per_problem)),
        "pass_at_k": sum(grading.pass_at_k(n, c, n) for c in per_problem) / len(per_problem),
        "n_problems": len(per_problem),
        "started_at": started,
        "finished_at": finished,
        "top_p": request.sampling.top_p,
        "max_new_tokens": request.sampling.max_new_tokens,
        "k": n,
        "model_path": str(request.model_dir),
        "model_fingerprint": fingerprint,
        "backend": backend,
        "device": request.device,
        "tokens": tokens,
        "tokens_per_s": tokens / max(gen_seconds, 1e-9),
        "seconds": seconds,
        "dataset_kind": request.dataset.kind,
        "seed": request.sampling.seed,
    }
    cache.write_eval(ident, {"evaluations": pa.Table.from_pylist([row]), "eval_samples": pa.Table.from_pylist(samples)})
    return row


def _tokenizer(auto, folder):
    """The folder's tokenizer, or an error naming the folder, what is missing and the fix (not a bug report)."""
    try:
        return auto.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise CheckpointFormatError(
            f"{folder}", "a tokenizer (tokenizer.json, or tokenizer_config.json with its vocabulary files)",
            f"none that loads ({type(error).__name__}: {str(error).strip().splitlines()[0][:120]})",
            "copy the base model's tokenizer files into it (trainers often save them with the base only), or "
            "save one with tokenizer.save_pretrained(folder)",
        ) from None  # fmt: skip


def _generate(request: EvalRequest, progress) -> tuple[list[tuple[list[str], int]], str, float]:
    """Completions, the backend used, and the seconds spent generating (model loading excluded)."""
    backend = choose_backend(request.device)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for item in Path(request.model_dir).iterdir():  # every file transformers may load, under the data roots
        if item.is_file():
            guard(item)

    tokenizer = _tokenizer(AutoTokenizer, request.model_dir)
    prompts = [build_prompt(tokenizer, p, request.dataset.kind) for p in request.dataset.problems]
    if backend == "vllm":
        started = time.perf_counter()
        return generate_vllm(str(request.model_dir), prompts, request.sampling), backend, time.perf_counter() - started
    import torch

    dtype = torch.bfloat16 if request.device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(request.model_dir, dtype=dtype)
    model.to(torch.device(request.device)).eval()  # type: ignore[arg-type]  # transformers' typed `to` wrapper
    started = time.perf_counter()
    out = generate_transformers(model, tokenizer, prompts, request.sampling, request.device, progress)
    return out, backend, time.perf_counter() - started


def _grade(dataset: EvalSet, completions, ident: str) -> tuple[list[dict], list[int]]:
    samples, per_problem = [], []
    for problem, (texts, _) in zip(dataset.problems, completions):
        correct_count = 0
        for i, text in enumerate(texts):
            extracted, correct = _judge(dataset.kind, text, problem.answer)
            correct_count += correct
            samples.append(
                {
                    "eval_id": ident,
                    "problem_id": problem.id,
                    "sample": i,
                    "completion": text,
                    "extracted": extracted,
                    "correct": correct,
                    "gold": problem.answer,
                }
            )
        per_problem.append(correct_count)
    return samples, per_problem


def _judge(kind: str, text: str, gold: str) -> tuple[str | None, bool]:
    if kind == "exact":
        return text.strip(), grading.grade_exact(text, gold)
    if kind == "choice":
        return grading.extract_choice(text), grading.grade_choice(text, gold)
    return grading.extract_boxed(text), grading.grade(text, gold)
