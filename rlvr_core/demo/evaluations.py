"""Step 5 of the demo: each checkpoint of the normal run, and its rank-1 substitution (every block weight
W_base + rank-1(dW), truncated; the other tensors kept from the step), evaluated greedily on the held-out
test set, and stored in the cache as what `rlvr compare` stores: one evaluation per model (`evaluations`,
`eval_samples`, dataset `arithmetic`) and one recovery row per step (`recovery`, keep = "step", with the
noise rule and interval of `math.stats` and the paired counts with McNemar's p, made by the same
`pipelines.compare.recovery_row`). So the Substitution page shows the demo's own numbers on a fresh
cache. The substitution happens in memory: no variant folder is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow as pa

from ..cache import EVAL_SCHEMAS, Cache
from ..math import arithmetic
from ..pipelines.compare import RECOVERY_KEY, recovery_row

DATASET = "arithmetic"


def graded(model, tokenizer, problems: list[arithmetic.Problem]) -> tuple[list[str], list[bool]]:
    """Greedy completions of `problems` and whether each is right."""
    from .policy import greedy_answers

    texts = greedy_answers(model, tokenizer, [p.prompt for p in problems], arithmetic.ANSWER_DIGITS + 1)
    return texts, [arithmetic.verify(t, p.answer) for t, p in zip(texts, problems, strict=True)]


def rank1_evaluations(run_dir: Path, base_dir: Path, base_linear: dict, tokenizer, test: list) -> list[dict]:
    """For the base and every checkpoint of `run_dir`: the full model's and (for steps) the rank-1
    substitution's completions and grades on `test`."""
    from transformers import AutoModelForCausalLM

    from ..readers.checkpoint import Checkpoint
    from ..readers.layout import discover_steps
    from ..training.periodic import substitute_rank_k_

    records = []
    for step, path in [(0, base_dir)] + [(c.step, c.path) for c in discover_steps(run_dir)]:
        model = AutoModelForCausalLM.from_pretrained(path)
        record = {
            "step": step,
            "path": str(path),
            "fingerprint": Checkpoint(path).fingerprint,
            "full": graded(model, tokenizer, test),
        }
        if step:
            substitute_rank_k_(model, base_linear, rank=1, mode="truncated")
            record["rank1"] = graded(model, tokenizer, test)
        records.append(record)
    return records


def store(cache: Cache, run: str, records: list[dict], test: list[arithmetic.Problem]) -> None:
    """Write the evaluations and the recovery rows of `rank1_evaluations` into the cache."""
    digest = hashlib.sha256(json.dumps([p.id for p in test]).encode()).hexdigest()[:16]
    base, rows = records[0], []
    base_row = _write(cache, run, 0, "base", None, base, base["full"], test, digest)
    for record in records[1:]:
        full_row = _write(cache, run, record["step"], "full", None, record, record["full"], test, digest)
        rank_row = _write(cache, run, record["step"], "rank-1", 1, record, record["rank1"], test, digest)
        keys = {"run": run, "step": record["step"], "rank": 1, "mode": "truncated", "dataset": DATASET}
        keys.update(keep="step", alpha=1.0, modules=None)
        rows.append(recovery_row(cache, keys, base_row, full_row, rank_row))
    cache.merge_run_rows(run, "recovery", rows, RECOVERY_KEY)


def _write(
    cache: Cache,
    run: str,
    step: int,
    variant: str,
    rank: int | None,
    record: dict,
    answers: tuple[list[str], list[bool]],
    test: list[arithmetic.Problem],
    digest: str,
) -> dict:
    """Store one evaluation (its `evaluations` row and one `eval_samples` row per problem); returns the row."""
    texts, correct = answers
    ident = hashlib.sha256(json.dumps([record["fingerprint"], variant, DATASET, digest, "demo greedy"]).encode())
    eval_id = ident.hexdigest()[:16]
    now = dt.datetime.now(dt.UTC)
    row = {
        "eval_id": eval_id,
        "run": run,
        "step": step,
        "variant": variant,
        "rank": rank,
        "mode": "truncated" if rank else None,
        "dataset": DATASET,
        "n": 1,
        "temperature": 0.0,
        "accuracy": sum(correct) / len(correct),
        "pass_at_k": sum(correct) / len(correct),
        "n_problems": len(test),
        "started_at": now,
        "finished_at": now,
        "top_p": 1.0,
        "max_new_tokens": arithmetic.ANSWER_DIGITS + 1,
        "k": 1,
        "model_path": record["path"],
        "model_fingerprint": record["fingerprint"],
        "backend": "demo greedy" + (" (rank-1 in memory, other tensors from the step)" if rank else ""),
        "device": "cpu",
        "dataset_kind": "exact",
        "seed": 0,
    }
    samples = [
        {
            "eval_id": eval_id,
            "problem_id": p.id,
            "sample": 0,
            "completion": t,
            "extracted": t.strip(),
            "correct": c,
            "gold": p.answer,
        }
        for p, t, c in zip(test, texts, correct, strict=True)
    ]
    cache.write_eval(
        eval_id,
        {
            "evaluations": pa.Table.from_pylist([row], schema=EVAL_SCHEMAS["evaluations"]),
            "eval_samples": pa.Table.from_pylist(samples, schema=EVAL_SCHEMAS["eval_samples"]),
        },
    )
    return row
