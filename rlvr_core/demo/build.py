"""`rlvr demo`: a real, tiny RLVR training run on CPU that ships as the built-in data.

1. A `LlamaForCausalLM` with a tiny config (3 layers, hidden 128; `--quick`: 2 layers) and a
   character-level `tokenizer.json` (`chartok`), seeded.
2. Supervised warm-up on 3-digit addition to partial accuracy (`warmup`): saved as `<out>/base`.
3. GRPO with a verifiable reward on a finite pool of 512 prompts (`grpo`), checkpoints in TRL's layout:
   `<out>/runs/demo-grpo/checkpoint-<N>/` with `trainer_state.json` (`reward` per step, `eval_accuracy`
   = greedy accuracy on 1,000 held-out problems at each checkpoint).
4. The same run with periodic rank-1 substitution every k steps (`training.periodic.PeriodicSubstitution`):
   `<out>/runs/demo-grpo-rank1-k<k>/`.
5. Rank-1 substitution of each checkpoint of the first run (W_base + rank-1(dW) for every block weight)
   evaluated on the test set: how much of the gain the rank-1 part keeps.
6. Both runs analysed into the cache (`pipelines.analyze`) and their logs ingested (`pipelines.logs`); a
   summary with every number in `<out>/demo_report.json`.

Seeds are fixed and torch uses `threads` threads, so a rerun on the same machine gives the same numbers.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..cache import Cache
from ..cache.atomic import MARKER, guard_output
from ..math import arithmetic
from .grpo import GRPOConfig
from .warmup import WarmupConfig

RUN = "demo-grpo"


@dataclass(frozen=True, kw_only=True)
class ModelSize:
    """The tiny model's dimensions."""

    layers: int = 3
    """Decoder blocks."""
    hidden: int = 128
    """Hidden size."""
    heads: int = 4
    """Attention heads (as many key/value heads)."""
    intermediate: int = 512
    """MLP width."""


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """What `rlvr demo` builds. The defaults are the full demo; `quick_config` the test/CI version."""

    out: Path = Path("demo")
    """Where the base model, the runs and the report go (its `base`, `runs/demo-*`, `data` are replaced)."""
    cache: Path = Path("cache")
    """The cache the runs are analysed into (their previous entries are replaced)."""
    quick: bool = False
    """The small version (for tests and CI): the full demo's first 20 GRPO steps (`quick_config`)."""
    seed: int = 0
    """Seed of the splits, the initial weights, the warm-up stream and the GRPO sampling."""
    threads: int = 2
    """torch threads: fixed, so reruns give the same numbers."""
    substitute_every: int = 25
    """k of the periodic rank-1 substitution run."""
    analyze: bool = True
    """Analyse both runs into the cache and ingest their logs."""
    model: ModelSize = field(default_factory=ModelSize)
    """The tiny model's dimensions."""
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    """Stage 1: the supervised warm-up."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """Stage 2: GRPO."""
    n_pool: int = 512
    """Training prompts (the finite pool GRPO samples from)."""
    n_test: int = 1000
    """Held-out test problems."""
    n_val: int = 256
    """Validation problems (warm-up stopping only)."""
    sweep: tuple[int, ...] = ()
    """More periods k: one more periodic rank-1 run per k, after the `substitute_every` one (the k sweep of
    `rlvr demo --seeds`)."""
    run_suffix: str = ""
    """Appended to every run name (`-s3` for seed 3 of `rlvr demo --seeds`), so seeds share one cache."""


def quick_config(**overrides) -> DemoConfig:
    """The `--quick` settings: the full demo's first 20 GRPO steps (same base, same splits, same samples,
    so its curves are a prefix of the full demo's), substitution every 10 steps. Under a minute on 2 cores."""
    base = DemoConfig(quick=True, substitute_every=10, grpo=GRPOConfig(steps=20, checkpoint_steps=(10, 20)))
    return replace(base, **overrides)


def plain_run(config: DemoConfig) -> str:
    """The plain GRPO run's name (`demo-grpo`, plus the seed suffix)."""
    return f"{RUN}{config.run_suffix}"


def substituted_run(config: DemoConfig, every: int | None = None) -> str:
    """The periodic rank-1 run's name for period `every` (default `substitute_every`)."""
    return f"{RUN}-rank1-k{every or config.substitute_every}{config.run_suffix}"


def demo_runs(config: DemoConfig) -> dict[str, int | None]:
    """Every run the demo trains, with its substitution period (None: the plain run)."""
    periods = dict.fromkeys((config.substitute_every, *config.sweep))
    return {plain_run(config): None, **{substituted_run(config, k): k for k in periods}}


class Progress(Protocol):
    """progress(message, fraction of the whole demo done, or None)."""

    def __call__(self, message: str, fraction: float | None = None) -> None: ...


SHARES = {"warm-up": 0.16, "grpo": 0.33, "grpo-periodic": 0.40, "evaluations": 0.06, "analysis": 0.05}
"""Each stage's share of the whole build (its share of the measured 192 s on 2 cores), so the demo job
reports a real fraction, and from it an ETA."""


def run_demo(config: DemoConfig, progress: Progress | None = None) -> dict:
    """Build the demo; returns the report (also written to `<out>/demo_report.json`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _build(config, progress or _quiet)
    finally:
        torch.set_num_threads(threads)


def _quiet(message: str, fraction: float | None = None) -> None:
    pass


def stage_progress(progress: Progress, name: str, prefix: str = "", shares: dict[str, float] = SHARES) -> Progress:
    """A stage's own progress (message, fraction of the stage) as the whole build's: `shares` holds each
    stage's share of the build, in order."""
    names = list(shares)
    start = sum(shares[n] for n in names[: names.index(name)])

    def report(message: str, fraction: float | None = None) -> None:
        progress(f"{prefix}{message}", start + shares[name] * min(max(fraction or 0.0, 0.0), 1.0))

    return report


def _part(progress: Progress, index: int, parts: int) -> Progress:
    """Part `index` of `parts` equal parts of a stage."""

    def report(message: str, fraction: float | None = None) -> None:
        progress(message, (index + min(max(fraction or 0.0, 0.0), 1.0)) / parts)

    return report


def _build(config: DemoConfig, progress: Progress) -> dict:
    import torch
    from transformers.utils import logging as hf_logging

    from ..training.periodic import PeriodicSubstitution, linear_state
    from . import grpo
    from .evaluations import rank1_evaluations
    from .trl_files import save_model
    from .warmup import accuracy, warm_up

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    started, timings = time.perf_counter(), {}
    out = Path(config.out)
    runs = demo_runs(config)
    _clear(out, config, list(runs))
    splits = arithmetic.make_splits(config.seed, config.n_pool, config.n_test, config.n_val)
    _write_sets(out / "data", splits)

    torch.manual_seed(config.seed)
    tokenizer, model = build_model(config.model)
    warm_progress = stage_progress(progress, "warm-up")
    warm_progress(
        f"warm-up: {sum(p.numel() for p in model.parameters()):,} parameters, target validation accuracy "
        f"{config.warmup.target_accuracy}"
    )
    warm = warm_up(model, tokenizer, splits, replace(config.warmup, seed=config.seed), warm_progress)
    save_model(model, tokenizer, out / "base")
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    base_linear = linear_state(model)
    base_acc = accuracy(model, tokenizer, splits.test)
    timings["warmup_s"] = time.perf_counter() - started
    warm_progress(f"base: {warm.steps} warm-up steps, test accuracy {base_acc:.3f}", 1.0)

    histories = {}
    periodic = len(runs) - 1
    for index, (name, every) in enumerate(runs.items()):
        stage = "grpo" if every is None else "grpo-periodic"
        t0 = time.perf_counter()
        model.load_state_dict(base_state)
        torch.manual_seed(config.seed)
        sub = PeriodicSubstitution(base_linear, every=every, rank=1) if every else None
        histories[name] = grpo.train(
            model,
            tokenizer,
            splits,
            replace(config.grpo, seed=config.seed),
            out / "runs" / name,
            sub,
            base_acc,
            _part(stage_progress(progress, stage, f"{name}: "), max(index - 1, 0), periodic if every else 1),
        )
        timings[f"{name}_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    stage_progress(progress, "evaluations")("rank-1 substitution of each checkpoint, evaluated")
    records = rank1_evaluations(out / "runs" / plain_run(config), out / "base", base_linear, tokenizer, splits.test)
    timings["rank1_eval_s"] = time.perf_counter() - t0
    report = {
        "config": jsonable(asdict(config)),
        "warmup": asdict(warm),
        "base_accuracy": base_acc,
        "runs": {name: run_curves(h) for name, h in histories.items()},
        "rank1": [
            {
                "step": r["step"],
                "full_accuracy": float(np.mean(r["full"][1])),
                "rank1_accuracy": float(np.mean(r["rank1"][1])),
            }
            for r in records[1:]
        ],
    }
    if config.analyze:
        t0 = time.perf_counter()
        report["alignment"] = analyze_runs(
            Path(config.cache), config.threads, out, list(runs), stage_progress(progress, "analysis")
        )
        _store_evaluations(config, records, splits.test)
        timings["analysis_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    report["timings"] = {k: round(v, 1) for k, v in timings.items()}
    (out / "demo_report.json").write_text(json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n")
    return report


def _store_evaluations(config: DemoConfig, records: list[dict], test: list) -> None:
    from .evaluations import store

    store(Cache(config.cache), plain_run(config), records, test)


def build_model(size: ModelSize):
    """A freshly initialised tiny `LlamaForCausalLM` and the character tokenizer (seed torch first)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from .chartok import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=32,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.max_new_tokens = arithmetic.ANSWER_DIGITS + 1
    model.generation_config.do_sample = False
    return tokenizer, model


def run_curves(history: list[dict], window: int = 10) -> list[dict]:
    """Per checkpoint: test and pool accuracy, and the mean sampled reward over the last `window` steps."""
    rewards = {r["step"]: r["reward"] for r in history if "reward" in r}
    rows = []
    for record in (r for r in history if "eval_accuracy" in r):
        step = record["step"]
        recent = [rewards[s] for s in range(max(1, step - window + 1), step + 1) if s in rewards]
        rows.append(
            {
                "step": step,
                "eval_accuracy": record["eval_accuracy"],
                "eval_pool_accuracy": record.get("eval_pool_accuracy"),
                "reward": float(np.mean(recent)) if recent else None,
            }
        )
    return rows


def analyze_runs(cache: Path, threads: int, out: Path, runs: list[str], progress: Progress) -> dict:
    """Analyse each run into the cache (replacing its old entries), ingest its log; the mean u1 alignment
    with the final step per step, per run."""
    from ..pipelines.analyze import AnalyzeConfig, analyze_run
    from ..pipelines.logs import ingest_log
    from ..readers.layout import discover_steps

    for run in runs:
        Cache(cache).remove_run(run)
        folder = out / "runs" / run
        analyze_run(
            AnalyzeConfig(
                base=out / "base",
                checkpoints=discover_steps(folder),
                run=run,
                cache=cache,
                device="cpu",
                workers=min(2, threads),
            )
        )
        ingest_log(cache, run, folder)
        progress(f"{run}: analysed into {cache}", (runs.index(run) + 1) / len(runs))
    rows = Cache(cache).queries().alignment_summary(runs)
    return {
        run: [
            {"step": s, "cos_u_final_mean": m, "cos_u_final_median": med, "cos_u_prev_mean": prev}
            for r, s, m, med, prev in rows
            if r == run
        ]
        for run in runs
    }


def _clear(out: Path, config: DemoConfig, runs: list[str]) -> None:
    """Remove what an earlier demo wrote to `out` (only the demo's own folders, each holding the tool's
    marker: a folder of the same name that the demo did not write stops it, before anything is changed),
    then create and mark the run folders."""
    folders = [out / "base", out / "data", *(out / "runs").glob(f"{RUN}*")]  # every run name starts with RUN
    for folder in folders:
        guard_output(folder, MARKER, protected=[config.cache])
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder)
    for name in runs:
        (out / "runs" / name).mkdir(parents=True, exist_ok=True)
        (out / "runs" / name / MARKER).write_text("written by RLVR Lens (rlvr demo)\n")


def _write_sets(folder: Path, splits: arithmetic.Splits) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("written by RLVR Lens (rlvr demo)\n")
    for name, problems in (("train_pool", splits.pool), ("test", splits.test)):
        lines = (json.dumps(r) for r in arithmetic.as_records(problems))
        (folder / f"arithmetic_{name}.jsonl").write_text("\n".join(lines) + "\n")


def jsonable(value):
    """`value` as JSON can hold it: paths as text, NaN and infinities as null (valid JSON, not bare NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value
