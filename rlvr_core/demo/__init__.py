"""The built-in demo (`rlvr demo`): a real, tiny RLVR run trained on CPU, shipped as the tool's own data.

- `chartok`: the character-level tokenizer, saved as a real `tokenizer.json`.
- `policy`: sampling, log-probabilities and greedy accuracy of a causal LM on the task.
- `warmup`: stage 1, supervised warm-up to a partial accuracy (the RL base).
- `grpo`: stage 2, GRPO with the verifier as reward.
- `trl_files`: checkpoint folders in TRL's layout.
- `build`: the whole demo (`run_demo`), analysed into the cache.
- `seeds`, `seeds_tables`: the demo over several seeds and periods k, every claim with its 95% interval.
- `smollm2`, `wordproblems`, `real_train`, `real`, `real_report`: the real-model demo (`--model smollm2`):
  SmolLM2-135M-Instruct trained with TRL's GRPOTrainer on word problems, analysed and reported.

May import: every lower layer (`rlvr_core.math`, `readers`, `cache`, `pipelines`, `training`); torch and
transformers. The task itself is `rlvr_core.math.arithmetic`.
"""

import importlib

_SUBMODULES = (
    "build",
    "chartok",
    "grpo",
    "policy",
    "real",
    "real_report",
    "real_train",
    "seeds",
    "seeds_tables",
    "smollm2",
    "trl_files",
    "warmup",
    "wordproblems",
)


def __getattr__(name: str):
    """`from rlvr_core.demo import DemoConfig, run_demo, ...` (the old module `rlvr_core.demo` is now
    `rlvr_core.demo.build`): loaded on first use, so importing the package does not import torch."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    try:
        return getattr(importlib.import_module(f"{__name__}.build"), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
