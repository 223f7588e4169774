"""Tensor names -> (layer, module, kind) for Llama/Qwen/Mistral, GPT-NeoX and GPT-2."""

from __future__ import annotations

import pytest

from rlvr_core.readers.naming import classify_tensor


@pytest.mark.parametrize(
    "name,shape,kind,layer,module,transposed",
    [
        ("model.layers.3.self_attn.q_proj.weight", (8, 8), "linear", 3, "self_attn.q_proj", False),
        ("model.layers.27.mlp.down_proj.weight", (8, 16), "linear", 27, "mlp.down_proj", False),
        (
            "gpt_neox.layers.2.attention.query_key_value.weight",
            (24, 8),
            "linear",
            2,
            "attention.query_key_value",
            False,
        ),
        ("gpt_neox.layers.0.mlp.dense_4h_to_h.weight", (8, 32), "linear", 0, "mlp.dense_4h_to_h", False),
        ("h.0.attn.c_attn.weight", (8, 24), "linear", 0, "attn.c_attn", True),
        ("transformer.h.11.mlp.c_proj.weight", (3072, 768), "linear", 11, "mlp.c_proj", True),
        ("model.embed_tokens.weight", (10, 4), "embedding", None, "embed_tokens", False),
        ("gpt_neox.embed_in.weight", (10, 4), "embedding", None, "embed_in", False),
        ("lm_head.weight", (10, 4), "lm_head", None, "lm_head", False),
        ("embed_out.weight", (10, 4), "lm_head", None, "embed_out", False),
        ("model.layers.0.input_layernorm.weight", (4,), "vector", 0, "input_layernorm", False),
        ("model.layers.1.self_attn.q_proj.bias", (4,), "vector", 1, "self_attn.q_proj.bias", False),
        ("h.0.attn.bias", (1, 1, 4, 4), "other", 0, "attn.bias", False),
    ],
)
def test_classify(name, shape, kind, layer, module, transposed) -> None:
    role = classify_tensor(name, shape)
    assert (role.kind, role.layer, role.module, role.transposed) == (kind, layer, module, transposed)
