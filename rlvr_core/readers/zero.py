"""DeepSpeed ZeRO checkpoints (OpenRLHF's default save) read directly: the exact fp32 master weights.

OpenRLHF 0.11.2 saves its actor with DeepSpeed (`DeepspeedStrategy.save_ckpt` -> `engine.save_checkpoint(
<ckpt.path>/_actor, tag="global_step<N>")`). The format is read from DeepSpeed 0.19.8's own code
(`deepspeed/utils/zero_to_fp32.py`, the script DeepSpeed copies beside every save, and `runtime/engine.py`;
0.19.6, the version OpenRLHF 0.11.2 pins, writes the same without per-parameter alignment paddings);
tests/test_zero.py checks every tensor against that script's `get_fp32_state_dict_from_zero_checkpoint`,
bit for bit, on saves DeepSpeed 0.19.6's own engine wrote (ZeRO-2 and ZeRO-3, 2 ranks). A tag folder holds:

- model states: `mp_rank_00_model_states.pt` (ZeRO-1/2) or `zero_pp_rank_<R>_mp_rank_00_model_states.pt`
  (ZeRO-3, one per rank): `param_shapes` (one ordered dict per optimizer parameter group, name -> shape,
  in flattening order), `shared_params` (a tied name -> the name it shares), frozen parameters
  (`frozen_param_shapes`, `frozen_param_fragments`: 16-bit, whole under ZeRO-2, one piece per rank under
  ZeRO-3), `ds_version`;
- `[bf16_]zero_pp_rank_<R>_mp_rank_00_optim_states.pt` per data-parallel rank: `optimizer_state_dict` with
  `zero_stage`, `partition_count` and the rank's share of the fp32 weights. ZeRO-1/2
  (`single_partition_of_fp32_groups`): each group's parameters lie end to end in one flat vector
  (`param_alignment_paddings` after each), split into equal slices, rank R holding slice R. ZeRO-3
  (`fp32_flat_groups`): each parameter is cut into `world` pieces of ceil(numel / world) (the last padded),
  rank R holding its pieces end to end across its groups.

Each file is opened with `torch.load(mmap=True, weights_only=True)`: the DeepSpeed objects the optimizer
file pickles (loss scaler, ZeRO stage enum, fragment addresses) are mapped to inert stand-ins, so nothing
in the file runs, and a read touches only the bytes of that tensor (Adam's moments, twice the weights'
size, are never read); once copied out, the mapped pages read are dropped (`system.libc`), as the FSDP
reader does. Pipeline- or tensor-parallel saves (`mp_rank_01`) and expert-parallel MoE saves
(`expp_rank_`) are refused with DeepSpeed's own conversion command (`deepspeed.zero_advice`).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointFormatError
from ..system.dataroots import guard
from ..system.libc import drop_mapped_pages
from .checkpoint import Checkpoint, TensorInfo, dtype_code, stat_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import torch

OPTIM_FILE = re.compile(r"^(?:bf16_)?zero_pp_rank_(?P<rank>[0-9]{1,6})_mp_rank_(?P<mp>[0-9]{2,6})_optim_states\.pt$")
MODEL_FILE = re.compile(r"^(?:zero_pp_rank_(?P<rank>[0-9]{1,6})_)?mp_rank_(?P<mp>[0-9]{2,6})_model_states\.pt$")
Piece = tuple[int, int, int, int]
"""(rank, group, start, length): a run of a parameter's flat elements in one rank's fp32 group tensor."""


def is_zero_folder(folder: Path) -> bool:
    """True when `folder` is a DeepSpeed tag folder (model states and ZeRO optimizer partitions)."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return False
    return any(OPTIM_FILE.match(n) for n in names) and any(MODEL_FILE.match(n) for n in names)


class ZeroCheckpoint(Checkpoint):
    """A DeepSpeed ZeRO tag folder (`_actor/global_step<N>/`); see the module docstring."""

    source = "zero-partitions"

    def __init__(self, path: str | Path) -> None:
        self.path = guard(Path(path))
        hf = self.path.parent.parent / f"{self.path.name}_hf"  # OpenRLHF's --ckpt.save_hf copy: config.json
        self.config_dir = hf if hf.is_dir() else self.path
        optim, model = _files(self.path)
        self.files = optim + model
        self.fingerprint = stat_fingerprint(self.files)
        states = [_load(f) for f in model]
        first = _load(optim[0])["optimizer_state_dict"]
        self.stage, self.world = int(first.get("zero_stage", 0)), _world(first.get("partition_count"))
        if self.world != len(optim) or self.stage not in (1, 2, 3):
            raise CheckpointFormatError(
                str(self.path), f"ZeRO stage 1-3 with one optimizer file per rank ({len(optim)} here)",
                f"stage {self.stage}, partition count {self.world}", _refer(self.path),
            )  # fmt: skip
        self._optim = optim
        self._groups: dict[int, list[Any]] = {0: _fp32_groups(first, self.stage, optim[0])}
        shapes: list[dict[str, Any]] = list(states[0].get("param_shapes") or [])
        if self.stage <= 2:
            self._pieces = _zero2_pieces(shapes, [int(g.numel()) for g in self._groups[0]], first, self.world)
        else:
            self._pieces = _zero3_pieces(shapes, [int(g.numel()) for g in self._groups[0]], self.world)
        self._frozen = _frozen(states, self.stage)
        dtype = self._groups[0][0].dtype if self._groups[0] else None
        self.tensors = {n: TensorInfo(n, dtype_code(dtype), tuple(s), optim[0]) for d in shapes for n, s in d.items()}
        for n, (s, t) in self._frozen.items():
            self.tensors[n] = TensorInfo(n, dtype_code(t.dtype), tuple(s), model[0])
        for alias, name in dict(states[0].get("shared_params") or {}).items():  # tied weights: one storage
            if name in self.tensors and alias not in self.tensors:
                self.tensors[alias] = self.tensors[name]
                if name in self._frozen:
                    self._frozen[alias] = self._frozen[name]
                else:
                    self._pieces[alias] = self._pieces[name]

    def read_tensor(self, name: str, index: int | None = None) -> torch.Tensor:
        """One parameter (a copy, fp32 master weights; frozen ones as stored); `index`: one first-axis slice."""
        import torch

        shape = self.tensors[name].shape
        inner = math.prod(shape[1:])
        start, count, out_shape = (0, math.prod(shape), shape) if index is None else (index * inner, inner, shape[1:])
        if index is not None and not 0 <= index < shape[0]:
            raise IndexError(f"tensor '{name}' has {shape[0]} slices, not {index + 1}")
        frozen = self._frozen.get(name)
        if frozen is not None:
            return frozen[1].reshape(-1)[start : start + count].clone().reshape(out_shape)
        parts, position = [], 0
        for rank, group, offset, length in self._pieces[name]:
            lo, hi = max(start, position), min(start + count, position + length)
            if lo < hi:
                parts.append((rank, self._group(rank, group)[offset + lo - position : offset + hi - position]))
            position += length
        flat = torch.cat([part for _, part in parts]) if parts else torch.empty(0)  # a copy
        for rank, part in parts:  # copied out: the mapped pages read leave memory (as the FSDP reader's)
            drop_mapped_pages(part.data_ptr(), part.numel() * part.element_size(), str(self._optim[rank]))
        if flat.numel() != count:
            raise CheckpointFormatError(
                f"{self._optim[0]} tensor '{name}'", f"{count} fp32 values", f"{flat.numel()} in the partitions",
                _refer(self.path),
            )  # fmt: skip
        return flat.reshape(out_shape)

    def _group(self, rank: int, group: int) -> torch.Tensor:
        if rank not in self._groups:
            state = _load(self._optim[rank])["optimizer_state_dict"]
            self._groups[rank] = _fp32_groups(state, self.stage, self._optim[rank])
        return self._groups[rank][group].detach()  # ZeRO-3 saves them as leaves that require grad


def _files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(optimizer files by rank, model-state files by rank) of a tag folder, or a one-line refusal."""
    optim: dict[int, Path] = {}
    model: dict[int, Path] = {}
    for file in folder.iterdir():
        if "expp_rank_" in file.name or re.search(r"mp_rank_(?!00_)[0-9]+_", file.name):
            raise CheckpointFormatError(
                str(file), "a data-parallel ZeRO save (mp_rank_00, no expert-parallel files)",
                "a tensor-, pipeline- or expert-parallel save", _refer(folder),
            )  # fmt: skip
        for pattern, found in ((OPTIM_FILE, optim), (MODEL_FILE, model)):
            match = pattern.match(file.name)
            if match:
                found[int(match["rank"] or 0)] = guard(file)
    missing: list[object] = [r for r in range(len(optim)) if r not in optim]
    missing += [] if 0 in model else ["model states"]
    if not optim or missing:
        raise CheckpointFormatError(
            str(folder), "every rank's *_optim_states.pt and the model states file", f"missing: {missing[:4]}",
            "copy the whole tag folder (a trainer still writing it: wait until DeepSpeed writes `latest`)",
        )  # fmt: skip
    return [optim[r] for r in sorted(optim)], [model[r] for r in sorted(model)]


def _load(file: Path) -> dict[str, Any]:
    import torch

    _allow_deepspeed_objects()
    try:
        state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises its own types for a cut, foreign or unknown-object file
        unknown = re.search(r"GLOBAL ([\w.]+)", str(exc))
        found = (
            f"an object of an unknown type ({unknown[1]}): not loaded, nothing in the file ran"
            if unknown
            else f"{type(exc).__name__}: {exc}"[:240]
        )
        raise CheckpointFormatError(
            str(file), "a DeepSpeed ZeRO checkpoint file (tensors and DeepSpeed's known bookkeeping objects)",
            found, _refer(file.parent),
        ) from None  # fmt: skip
    if not isinstance(state, dict) or ("optimizer_state_dict" not in state and "param_shapes" not in state):
        where, found = str(file), type(state).__name__
        raise CheckpointFormatError(where, "DeepSpeed model or optimizer states", found, _refer(file.parent))
    return state


class _Inert:
    """Stands in for a DeepSpeed bookkeeping object in a checkpoint: keeps its fields, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stage(value: Any) -> int:
    """DeepSpeed's `ZeroStageEnum(value)`, pickled by value: the stage number."""
    return int(value)


_DEEPSPEED_OBJECTS = [
    (_stage, "deepspeed.runtime.zero.config.ZeroStageEnum"),
    (_Inert, "deepspeed.runtime.fp16.loss_scaler.LossScaler"),
    (_Inert, "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler"),
    (_Inert, "deepspeed.utils.tensor_fragment.fragment_address"),
]


def _allow_deepspeed_objects() -> None:
    import torch.serialization

    torch.serialization.add_safe_globals(_DEEPSPEED_OBJECTS)  # type: ignore[arg-type]


def _world(count: Any) -> int:
    """The data-parallel world size: `partition_count` (a list per group under ZeRO-2: its largest)."""
    values = count if isinstance(count, list) else [count]
    return max((int(v) for v in values if isinstance(v, int)), default=0)


def _fp32_groups(state: dict[str, Any], stage: int, file: Path) -> list[Any]:
    key = "single_partition_of_fp32_groups" if stage <= 2 else "fp32_flat_groups"
    groups = state.get(key)
    if not isinstance(groups, list) or not all(hasattr(g, "numel") for g in groups):
        raise CheckpointFormatError(str(file), f"the fp32 partitions under '{key}'", "none", _refer(file.parent))
    return groups


def _zero2_pieces(
    shapes: list[dict[str, Any]], sizes: list[int], state: dict[str, Any], world: int
) -> dict[str, list[Piece]]:
    """ZeRO-1/2: group g's flat vector is the ranks' slices (each `sizes[g]` long) end to end."""
    paddings = state.get("param_alignment_paddings")
    pieces: dict[str, list[Piece]] = {}
    for group, named in enumerate(shapes):
        offset = 0
        for i, (name, shape) in enumerate(named.items()):
            numel = math.prod(shape)
            pieces[name] = _split(offset, numel, sizes[group], world, lambda rank, start, g=group: (rank, g, start))
            offset += numel + (int(paddings[group][i]) if paddings else 0)
    return pieces


def _split(offset: int, numel: int, size: int, world: int, where) -> list[Piece]:
    out = []
    for rank in range(world):
        lo, hi = max(offset, rank * size), min(offset + numel, (rank + 1) * size)
        if lo < hi:
            out.append((*where(rank, lo - rank * size), hi - lo))
    return out


def _zero3_pieces(shapes: list[dict[str, Any]], sizes: list[int], world: int) -> dict[str, list[Piece]]:
    """ZeRO-3: each parameter is `world` pieces of ceil(numel / world), at the same offset in every rank's
    groups laid end to end; the pieces in rank order, cut to numel, are the parameter."""
    bounds = [0, *itertools.accumulate(sizes)]
    pieces: dict[str, list[Piece]] = {}
    offset = 0
    for name, shape in ((n, s) for named in shapes for n, s in named.items()):
        numel = math.prod(shape)
        part = math.ceil(numel / world) if numel else 0
        runs: list[Piece] = []
        for rank in range(world):
            keep = max(0, min(part, numel - rank * part))
            runs += [(rank, g, s, n) for g, s, n in _locate(bounds, offset, keep)]
        pieces[name] = runs
        offset += part
    return pieces


def _locate(bounds: list[int], start: int, length: int) -> list[tuple[int, int, int]]:
    """(group, start in group, length) runs covering [start, start + length) of groups laid end to end."""
    out = []
    for group in range(len(bounds) - 1):
        lo, hi = max(start, bounds[group]), min(start + length, bounds[group + 1])
        if lo < hi:
            out.append((group, lo - bounds[group], hi - lo))
    return out


def _frozen(states: list[dict[str, Any]], stage: int) -> dict[str, tuple[Any, Any]]:
    """Frozen parameters: name -> (shape, the whole tensor as stored), joined from ranks under ZeRO-3."""
    import torch

    shapes = dict(states[0].get("frozen_param_shapes") or {})
    out = {}
    for name, shape in shapes.items():
        if stage <= 2:
            whole = states[0]["frozen_param_fragments"][name]
        else:
            whole = torch.cat([s["frozen_param_fragments"][name].reshape(-1) for s in states])[: math.prod(shape)]
        out[name] = (tuple(shape), whole.detach().reshape(tuple(shape)))
    return out


def _refer(folder: Path) -> str:
    from .deepspeed import zero_advice

    return zero_advice(folder) or "point at a DeepSpeed tag folder (<save_dir>/global_step<N>)"
