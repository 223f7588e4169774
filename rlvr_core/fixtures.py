"""Builders for tiny, real checkpoints with planted structure (tests, demos and benches use them).

`build_run` writes a base model and a run folder of step checkpoints in a framework's layout, as real
safetensors files (single-file or sharded with an index), in fp32, fp16 or bf16. Every linear weight of
step s is

    W_s = W_base + sigma_s * u v^T + noise * G_s,   sigma_s = sigma * s / max(steps)

with unit vectors u (out) and v (in) fixed per tensor, so the rank-1 answer is known (`RunFixture.planted`).
GPT-2 weights are stored in x out, as `Conv1D` does. Nothing here is imported by the library itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ModelShape:
    """A transformer's tensor shapes (Hugging Face names for `arch`)."""

    arch: str = "llama"
    """`llama` (also Qwen2/Qwen3/Mistral names), `gpt2` or `neox`."""
    n_layers: int = 2
    hidden: int = 32
    intermediate: int = 64
    kv_dim: int = 16
    """Output size of k_proj and v_proj (grouped-query attention) for `llama`."""
    vocab: int = 64


def model_tensor_shapes(shape: ModelShape) -> dict[str, tuple[int, ...]]:
    """Stored shape of every tensor of a model (GPT-2 linear weights are in x out)."""
    h, f, kv = shape.hidden, shape.intermediate, shape.kv_dim
    out: dict[str, tuple[int, ...]] = {}
    for i in range(shape.n_layers):
        if shape.arch == "llama":
            p = f"model.layers.{i}."
            out |= {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                    p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                    p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h),
                    p + "mlp.down_proj.weight": (h, f), p + "input_layernorm.weight": (h,)}
        elif shape.arch == "gpt2":
            p = f"h.{i}."
            out |= {p + "attn.c_attn.weight": (h, 3 * h), p + "attn.c_proj.weight": (h, h),
                    p + "mlp.c_fc.weight": (h, f), p + "mlp.c_proj.weight": (f, h), p + "ln_1.weight": (h,),
                    p + "attn.c_attn.bias": (3 * h,)}
        elif shape.arch == "neox":
            p = f"gpt_neox.layers.{i}."
            out |= {p + "attention.query_key_value.weight": (3 * h, h), p + "attention.dense.weight": (h, h),
                    p + "mlp.dense_h_to_4h.weight": (f, h), p + "mlp.dense_4h_to_h.weight": (h, f),
                    p + "input_layernorm.weight": (h,)}
        else:
            raise ValueError(f"unknown arch {shape.arch!r}")
    embed = {"llama": "model.embed_tokens.weight", "gpt2": "wte.weight", "neox": "gpt_neox.embed_in.weight"}
    out[embed[shape.arch]] = (shape.vocab, h)
    if shape.arch == "llama":
        out["lm_head.weight"] = (shape.vocab, h)
    return out


def is_conv1d(name: str, arch: str) -> bool:
    return arch == "gpt2" and name.endswith(".weight") and any(m in name for m in ("c_attn", "c_proj", "c_fc"))


def random_model(shape: ModelShape, seed: int = 0) -> dict[str, torch.Tensor]:
    """fp32 weights with the scale of a real initialisation (std 0.02; norms at 1)."""
    gen = torch.Generator().manual_seed(seed)
    return {name: (torch.ones(s) if len(s) == 1 else torch.randn(*s, generator=gen) * 0.02)
            for name, s in model_tensor_shapes(shape).items()}


def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], dtype: str = "bf16", shards: int = 1,
                     model_type: str = "llama") -> Path:
    """Write `tensors` as a Hugging Face checkpoint folder (sharded with an index when shards > 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    cast = {n: t.to(DTYPES[dtype]).contiguous() for n, t in tensors.items()}
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "torch_dtype": str(DTYPES[dtype])[6:]}))
    if shards <= 1:
        save_file(cast, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder
    names = list(cast)
    weight_map = {}
    for k in range(shards):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: cast[n] for n in names[k::shards]}
        save_file(part, str(folder / file), metadata={"format": "pt"})
        weight_map |= {n: file for n in part}
    total = sum(t.numel() * t.element_size() for t in cast.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return folder


LAYOUTS = {
    "trl": "checkpoint-{step}",
    "verl": "global_step_{step}/actor/huggingface",
    "openrlhf": "global_step{step}_hf",
    "plain": "step_{step}",
}


@dataclass
class RunFixture:
    """What `build_run` wrote."""

    base_dir: Path
    run_dir: Path
    steps: list[int]
    step_dirs: dict[int, Path]
    planted: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    """tensor name -> (u, v): the planted unit vectors, u over outputs and v over inputs (out x in)."""
    sigma: dict[int, float] = field(default_factory=dict)
    """step -> planted sigma_s."""
    perpendicular: dict[str, torch.Tensor] = field(default_factory=dict)
    """tensor name -> a unit vector orthogonal to the planted u (the plane u rotates in)."""


def build_run(root: Path, shape: ModelShape = ModelShape(), steps: tuple[int, ...] = (10, 20),
              layout: str = "trl", dtype: str = "bf16", shards: int = 2, sigma: float = 1.0,
              noise: float = 1e-4, seed: int = 0, untouched: tuple[str, ...] = (),
              rotate_u: float = 0.0) -> RunFixture:
    """Write `root/base` and `root/run/<layout dirs>`; tensors named in `untouched` keep dW = 0.

    With `rotate_u` (radians per step), the planted left vector of step s is
    u_s = cos(rotate_u * s) u + sin(rotate_u * s) u_perp, so |cos(u_s, u_t)| = |cos(rotate_u (s - t))|.
    """
    base = random_model(shape, seed)
    write_checkpoint(root / "base", base, dtype, shards, shape.arch)
    gen = torch.Generator().manual_seed(seed + 1)
    fixture = RunFixture(root / "base", root / "run", list(steps), {})
    for name, tensor in base.items():
        if tensor.ndim == 2 and name not in untouched and "embed" not in name and "wte" not in name \
                and name != "lm_head.weight":
            rows, cols = tensor.shape[::-1] if is_conv1d(name, shape.arch) else tensor.shape
            u, v, w = torch.randn(rows, generator=gen), torch.randn(cols, generator=gen), torch.randn(rows, generator=gen)
            u = u / u.norm()
            w = w - (w @ u) * u
            fixture.planted[name] = (u, v / v.norm())
            fixture.perpendicular[name] = w / w.norm()
    for step in steps:
        s = sigma * step / max(steps)
        fixture.sigma[step] = s
        weights = {}
        for name, tensor in base.items():
            if name in fixture.planted:
                u, v = fixture.planted[name]
                if rotate_u:
                    angle = torch.tensor(rotate_u * step, dtype=u.dtype)
                    u = torch.cos(angle) * u + torch.sin(angle) * fixture.perpendicular[name]
                delta = s * torch.outer(u, v) + noise * torch.randn(len(u), len(v), generator=gen)
                tensor = tensor + (delta.T if is_conv1d(name, shape.arch) else delta)
            weights[name] = tensor
        folder = fixture.run_dir / LAYOUTS[layout].format(step=step)
        write_checkpoint(folder, weights, dtype, shards, shape.arch)
        fixture.step_dirs[step] = folder
    return fixture
