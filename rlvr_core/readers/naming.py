"""Tensor names to roles: which block (layer) a weight belongs to, which module it is, and its kind.

Supported naming schemes (Hugging Face `transformers` state dicts):

- Llama, Qwen2, Qwen3, Mistral: `model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`,
  `model.layers.{i}.mlp.{gate,up,down}_proj.weight`, `model.embed_tokens.weight`, `lm_head.weight`.
- GPT-NeoX: `gpt_neox.layers.{i}.attention.{query_key_value,dense}.weight`,
  `gpt_neox.layers.{i}.mlp.{dense_h_to_4h,dense_4h_to_h}.weight`, `gpt_neox.embed_in.weight`,
  `embed_out.weight`.
- GPT-2: `[transformer.]h.{i}.attn.{c_attn,c_proj}.weight`, `[transformer.]h.{i}.mlp.{c_fc,c_proj}.weight`.
  GPT-2 uses `Conv1D`, which stores weights as in x out; `TensorRole.transposed` is true for those and
  the analysis transposes them so every matrix is analysed as out x in, like `nn.Linear`.
- Mixtures of experts, one 2-D weight per expert (names as the Hub checkpoints store them, read from
  transformers' conversion and loading code): Qwen2-MoE/Qwen3-MoE `mlp.experts.{e}.{gate,up,down}_proj`,
  `mlp.shared_expert.*`, router `mlp.gate`; Mixtral `block_sparse_moe.experts.{e}.{w1,w2,w3}`, router
  `block_sparse_moe.gate`; DeepSeek-V2/V3 `mlp.experts.{e}.*`, `mlp.shared_experts.*`, attention
  `self_attn.{q_a_proj,q_b_proj,kv_a_proj_with_mqa,kv_b_proj}`. An expert's `expert` is its index and its
  `module` the projection without it (`mlp.experts.gate_proj`), so every expert of a layer shares one
  module kind (the pages aggregate over experts); routers and shared experts are module kinds of their own.
- Fused 3-D expert tensors, one per layer and projection (`experts.gate_up_proj`, `experts.down_proj`, no
  `.weight`), split per expert by `fused_roles` into the same per-expert names
  (`...experts.{e}.{gate,up,down}_proj.weight`) so every page treats both layouts alike. Two layouts, read
  from transformers 5's own code: gpt-oss (`GptOssExperts`, `model_type` `gpt_oss`, what its
  `save_pretrained` writes) stores experts x in x out (`x @ gate_up_proj[e]`) with gate and up interleaved
  on the last axis (`gate_up[..., ::2]`, `gate_up[..., 1::2]`); the fused modules of Qwen2/3-MoE, Mixtral,
  DeepSeek and the other MoE models in transformers 5 (`Qwen3MoeExperts`: `F.linear(x, gate_up_proj[e])
  .chunk(2, dim=-1)`; `conversion_mapping.py`: `MergeModulelist(dim=0), Concatenate(dim=1)`) store experts
  x out x in with gate then up concatenated. Their `save_pretrained` writes the per-expert names again; the
  fused layout is what a trainer writes when it saves `model.state_dict()` directly. gpt-oss's MXFP4 Hub
  weights (`gate_up_proj_blocks`, `_scales`) are `other`: dequantize them first.
- Any other model whose blocks are `*.layers.{i}.*`, `*.h.{i}.*` or `*.blocks.{i}.*`: 2-D `.weight`
  tensors inside a block are treated as linear layers.

`module` is the name inside the block without `.weight` (`self_attn.q_proj`, `mlp.c_fc`), so it is
unambiguous across architectures. Kinds: `linear` (analysed by default), `embedding`, `lm_head`
(2-D, analysed only on request), `vector` (1-D: norms, biases) and `other` (never analysed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LINEAR = "linear"
EMBEDDING = "embedding"
LM_HEAD = "lm_head"
VECTOR = "vector"
OTHER = "other"

_INDEX = r"[0-9]{1,18}"  # ASCII digits, below 2^63 (int64) like steps: `layers.２` or a 30-digit index is no block
_BLOCK = re.compile(rf"^(?P<prefix>.*?)(?:^|\.)(?:layers|h|blocks)\.(?P<layer>{_INDEX})\.(?P<module>.+)\.weight$")
_GPT2_CONV1D = re.compile(r"^(?:transformer\.)?h\.\d+\.(?:attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")
_EMBEDDING = re.compile(r"(?:^|\.)(?:embed_tokens|embed_in|wte|wpe|word_embeddings)\.weight$")
_LM_HEAD = re.compile(r"^(?:lm_head|embed_out)\.weight$")
_FUSED = re.compile(
    rf"^(?P<before>(?:.*\.)?(?:layers|h|blocks)\.(?P<layer>{_INDEX})\..*?experts)\.(?P<proj>gate_up_proj|down_proj)$"
)
_EXPERT = re.compile(rf"^(?P<before>.*?\.experts)\.(?P<expert>{_INDEX})\.(?P<after>.+)$")
_ANY_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks|experts)\.(?P<index>\d+)(?:\.|$)")  # \d: any Unicode digit
MAX_EXPERTS = 4096
"""The most experts a fused expert tensor may declare when the config names no count (`num_experts`,
`num_local_experts`, `n_routed_experts`); today's largest models have 384."""
# 2-D tensors inside blocks that are not weight matrices of a linear map.
_NOT_LINEAR = re.compile(r"(?:norm|ln_\d|layernorm|rotary|inv_freq|\.bias$)", re.IGNORECASE)


@dataclass(frozen=True)
class TensorRole:
    """What one stored tensor is."""

    name: str
    """The tensor's key in the safetensors files."""
    kind: str
    """One of `linear`, `embedding`, `lm_head`, `vector`, `other`."""
    layer: int | None
    """Block index for tensors inside a transformer block, else None."""
    module: str
    """Module path inside the block (`self_attn.q_proj`), or the tensor name without `.weight` outside."""
    transposed: bool
    """True when stored as in x out (GPT-2 `Conv1D`): the analysis transposes it to out x in."""
    expert: int | None = None
    """The expert's index for a weight of one expert of a mixture of experts, else None."""
    fused: FusedSlice | None = None
    """Where in a fused 3-D expert tensor this matrix lives; None when `name` is a stored 2-D tensor."""

    @property
    def stored(self) -> str:
        """The stored tensor holding this matrix (`name` itself unless fused)."""
        return self.fused.source if self.fused else self.name


@dataclass(frozen=True)
class FusedSlice:
    """One expert's matrix inside a fused 3-D expert tensor: `source[index]`, transposed to out x in when
    `TensorRole.transposed`, then rows `start:stop:step` of it."""

    source: str
    """The stored 3-D tensor's name."""
    index: int
    """The expert (index along the first axis)."""
    rows: tuple[int, int, int]
    """(start, stop, step) of the out axis: gate and up halves of a fused gate_up tensor."""


def classify_tensor(name: str, shape: tuple[int, ...]) -> TensorRole:
    """Return the role of tensor `name` with stored `shape`."""
    short = name[: -len(".weight")] if name.endswith(".weight") else name
    layer, inner = _split_block(short)
    if len(shape) == 1:
        return TensorRole(name, VECTOR, layer, inner, False)
    if len(shape) != 2:
        return TensorRole(name, OTHER, layer, inner, False)
    if _LM_HEAD.search(name):
        return TensorRole(name, LM_HEAD, None, short, False)
    if _EMBEDDING.search(name):
        return TensorRole(name, EMBEDDING, None, short.rsplit(".", 1)[-1], False)
    match = _BLOCK.match(name)
    if match and not _NOT_LINEAR.search(match.group("module")):
        transposed = bool(_GPT2_CONV1D.match(name))
        module, expert = match.group("module"), None
        moe = _EXPERT.match(module)
        if moe:
            module, expert = f"{moe['before']}.{moe['after']}", int(moe["expert"])
        return TensorRole(name, LINEAR, int(match.group("layer")), module, transposed, expert)
    return TensorRole(name, OTHER, layer, inner, False)


def roles_of(name: str, shape: tuple[int, ...], model_type: str | None = None) -> list[TensorRole]:
    """The matrices one stored tensor holds: one per expert and projection for a fused 3-D expert tensor,
    else the tensor itself (`classify_tensor`)."""
    return fused_roles(name, shape, model_type) or [classify_tensor(name, shape)]


def fused_roles(name: str, shape: tuple[int, ...], model_type: str | None = None) -> list[TensorRole]:
    """Per-expert matrices of a fused 3-D expert tensor (see the module docstring), or [] for any other."""
    match = _FUSED.match(name)
    if not match or len(shape) != 3:
        return []
    experts, a, b = shape
    transposed = model_type == "gpt_oss"  # experts x in x out
    out = b if transposed else a
    if match["proj"] == "down_proj":
        halves = [("down_proj", (0, out, 1))]
    elif out % 2:
        return []  # not a gate/up pair: leave it `other`
    elif transposed:
        halves = [("gate_proj", (0, out, 2)), ("up_proj", (1, out, 2))]  # interleaved
    else:
        halves = [("gate_proj", (0, out // 2, 1)), ("up_proj", (out // 2, out, 1))]  # concatenated
    layer, before = int(match["layer"]), match["before"]
    module_of = before.split(f".{layer}.", 1)[1]
    return [
        TensorRole(
            f"{before}.{e}.{proj}.weight",
            LINEAR,
            layer,
            f"{module_of}.{proj}",
            transposed,
            e,
            FusedSlice(name, e, rows),
        )
        for e in range(experts)
        for proj, rows in halves
    ]


def index_problem(name: str) -> str | None:
    """What is wrong with a block or expert index in `name` (not ASCII digits, or not below 2^63), else None."""
    for match in _ANY_INDEX.finditer(name):
        index = match["index"]
        if not index.isascii():
            return f"the index '{index}' written with digits that are not ASCII 0-9"
        if len(index) > 18:
            return f"the index {index[:24]}{'...' if len(index) > 24 else ''} ({len(index)} digits, past int64)"
    return None


def fused_problem(name: str, shape: tuple[int, ...], max_experts: int) -> str | None:
    """What is wrong with a fused 3-D expert tensor's declared shape (too many experts, or experts of no
    elements), checked before any role is enumerated; None for a sound one or any other tensor."""
    if not _FUSED.match(name) or len(shape) != 3:
        return None
    experts, a, b = shape
    if experts > max_experts:
        return f"{experts} experts (shape {list(shape)}), more than {max_experts}"
    if experts and not a * b:
        return f"experts of no elements (shape {list(shape)})"
    return None


def matrix_shape(role: TensorRole, stored: tuple[int, ...]) -> tuple[int, int]:
    """out x in of the matrix `role` names, from its stored tensor's shape (one expert's slice of a fused
    tensor; transposed where the storage is in x out)."""
    dims = stored[1:] if role.fused else stored
    out, inn = (dims[1], dims[0]) if role.transposed else (dims[0], dims[1])
    if role.fused:
        start, stop, step = role.fused.rows
        out = len(range(start, min(stop, out), step))
    return out, inn


def _split_block(short: str) -> tuple[int | None, str]:
    """(block index, name inside the block) or (None, the whole name) outside blocks."""
    match = re.search(rf"(?:^|\.)(?:layers|h|blocks)\.({_INDEX})\.", short)
    if not match:
        return None, short
    return int(match.group(1)), short[match.end() :]
