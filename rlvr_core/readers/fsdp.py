"""verl's FSDP training checkpoints read as they are: the exact fp32 master weights, no merge, no bf16 cast.

What verl 0.9.1 writes (read from its `verl/utils/checkpoint/fsdp_checkpoint_manager.py`, and written by
that code in the tests: `FSDPCheckpointManager.save_checkpoint`, FSDP1 and FSDP2, gloo, 2 ranks): per step,
`global_step_N/actor/model_world_size_W_rank_R.pt` for R = 0 .. W-1, each `torch.save` of the rank's
`model.state_dict()` under `SHARDED_STATE_DICT`: one `DTensor` per parameter under its Hugging Face name,
its rank's row block (`Shard(0)` on a `("fsdp",)` mesh; HSDP: `(Replicate(), Shard(0))` on `("ddp",
"fsdp")`), plain tensors for buffers; `fsdp_config.json` (`FSDP_version`, `world_size`); and
`huggingface/` with `config.json` and the tokenizer (the weights there only after `verl.model_merger`,
which casts them to bf16).

`FsdpCheckpoint(folder)` is a `Checkpoint` (same shapes, roles, `read_matrix`, fingerprint from the rank
files' sizes and mtimes): each rank file is opened with `torch.load(mmap=True, weights_only=True)`, so the
unpickling reads only the tensors' metadata and a read touches only the bytes of that tensor's blocks.
A tensor is its fsdp group's local blocks joined along the sharded dimension (`Shard(d)`, any d; one fsdp
group of an HSDP mesh, as verl's merger does), or one rank's copy (`Replicate`, plain tensors). Once a tensor is copied
out, the mapped pages it was read from are dropped (`madvise(MADV_DONTNEED)`, `system.libc`), and the
mapped files are let go once `RELEASE_BYTES` have been read through them: memory stays near one tensor. TP
meshes and LoRA-only saves are refused with one line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointFormatError
from ..system.dataroots import guard
from ..system.libc import drop_mapped_pages
from .checkpoint import Checkpoint, TensorInfo, dtype_code, stat_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import torch

RANK_FILE = re.compile(r"^model_world_size_(?P<world>[0-9]{1,6})_rank_(?P<rank>[0-9]{1,6})\.pt$")
RELEASE_BYTES = 512 * 1024 * 1024
"""Bytes read through the mapped rank files before they are unmapped and mapped again on the next read."""
_FSDP_DIMS = {("fsdp",), ("ddp", "fsdp"), ("dp", "fsdp")}


def is_fsdp_folder(folder: Path) -> bool:
    """True when `folder` holds verl's per-rank model files."""
    try:
        return any(RANK_FILE.match(p.name) for p in folder.iterdir())
    except OSError:
        return False


class FsdpCheckpoint(Checkpoint):
    """A verl FSDP checkpoint folder (`global_step_N/actor/`); see the module docstring."""

    source = "fsdp-shards"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_dir = self.path / "huggingface"
        self.world, self.rank_files = _rank_files(self.path)
        self.files = list(self.rank_files)
        self._loaded: dict[int, dict[str, Any]] = {}
        self._read_since_release = 0
        self.fingerprint = stat_fingerprint(self.files)
        self._ranks, self._layout = _layout(self._state(0), self.rank_files[0], self.world)
        self.tensors = {name: _info(name, t, self.rank_files[0]) for name, t in self._state(0).items()}

    def read_tensor(self, name: str, index: int | None = None) -> torch.Tensor:
        """The whole tensor (a copy, stored dtype) from its fsdp group's blocks; `index`: one first-axis slice."""
        import torch

        dim = self._layout[name]
        if dim is None:  # replicated, or a plain tensor: rank 0's copy
            local = _local(self._state(0)[name])
            out = (local if index is None else local[index]).clone()
        else:
            blocks = [_local(self._state(rank)[name]) for rank in self._ranks]
            if index is not None and dim == 0:
                out = _row(blocks, index, name, self.rank_files[0]).clone()
            else:
                joined = torch.cat(blocks, dim=dim)
                if tuple(joined.shape) != self.tensors[name].shape:
                    raise CheckpointFormatError(
                        f"{self.rank_files[0]} tensor '{name}'", f"blocks making shape {self.tensors[name].shape}",
                        f"shape {tuple(joined.shape)} from ranks {self._ranks}", _MERGE,
                    )  # fmt: skip
                out = joined if index is None else joined[index].clone()
        sources = zip(blocks, self._ranks) if dim is not None else [(local, 0)]
        for block, rank in sources:  # copied out: the mapped pages read leave memory
            drop_mapped_pages(block.data_ptr(), block.numel() * block.element_size(), str(self.rank_files[rank]))
        self._read_since_release += out.numel() * out.element_size()
        if self._read_since_release > RELEASE_BYTES:
            self._loaded = {}  # unmapped: the pages read so far leave this process's memory
            self._read_since_release = 0
        return out

    def _state(self, rank: int) -> dict[str, Any]:
        if rank not in self._loaded:
            self._loaded[rank] = _load(self.rank_files[rank])
        return self._loaded[rank]


def _rank_files(folder: Path) -> tuple[int, list[Path]]:
    guard(folder)
    found: dict[int, dict[int, Path]] = {}
    for file in folder.iterdir():
        match = RANK_FILE.match(file.name)
        if match:
            found.setdefault(int(match["world"]), {})[int(match["rank"])] = guard(file)
    if len(found) != 1:
        sizes = ", ".join(str(w) for w in sorted(found)) or "none"
        raise CheckpointFormatError(
            str(folder), "the model files of one world size (model_world_size_W_rank_R.pt)", f"world sizes {sizes}",
            "keep one save per step folder (move the others away)",
        )  # fmt: skip
    ((world, ranks),) = found.items()
    missing = [r for r in range(world) if r not in ranks]
    if missing:
        raise CheckpointFormatError(
            str(folder), f"{world} rank files (world size {world})", f"rank(s) {missing[:4]} missing",
            "copy every rank's model file (a trainer still writing: wait for it)",
        )  # fmt: skip
    return world, [ranks[r] for r in range(world)]


def _load(file: Path) -> dict[str, Any]:
    import torch
    import torch.distributed.tensor  # lets weights_only=True rebuild DTensors

    logging.getLogger("torch.distributed.device_mesh").setLevel(logging.ERROR)  # "unpickling before PGs"
    try:
        state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises its own types for a cut or foreign file
        raise CheckpointFormatError(
            str(file), "a rank file torch.save wrote (a state dict of tensors)", f"{type(exc).__name__}: {exc}"[:200],
            "re-copy the file; a trainer still writing it: wait for the step to finish",
        ) from None  # fmt: skip
    if not isinstance(state, dict):
        raise CheckpointFormatError(str(file), "a state dict", type(state).__name__, "point at verl's actor/ folder")
    return state


def _layout(state: dict[str, Any], file: Path, world: int) -> tuple[list[int], dict[str, int | None]]:
    """(the ranks of the fsdp group read, in order; tensor -> its sharded dimension, None when whole)."""
    if state and all("lora_" in name or ".adapter_" in name for name in state):
        raise CheckpointFormatError(
            str(file), "the model's own weights", "a LoRA-only save (only adapter weights)",
            "save the full model (checkpoint.save_lora_only=False), or merge the adapter into the base first",
        )  # fmt: skip
    ranks, layout = list(range(world)), dict[str, int | None]()
    for name, value in state.items():
        mesh = getattr(value, "device_mesh", None)
        if mesh is None:
            layout[name] = None
            continue
        dims = tuple(mesh.mesh_dim_names or ())
        if dims not in _FSDP_DIMS:
            raise CheckpointFormatError(
                f"{file} tensor '{name}'", "an FSDP or HSDP mesh (fsdp, or ddp x fsdp)", f"a mesh {dims}",
                "tensor-parallel saves are not supported: merge them with verl.model_merger first",
            )  # fmt: skip
        grid = mesh.mesh.tolist()
        ranks = grid[0] if len(dims) == 2 else grid  # one fsdp group of an HSDP mesh
        layout[name] = _sharded_dim(value.placements, dims, f"{file} tensor '{name}'")
    return ranks, layout


def _sharded_dim(placements: tuple, dims: tuple[str, ...], where: str) -> int | None:
    from torch.distributed.tensor import Replicate, Shard

    if len(dims) == 2 and not isinstance(placements[0], Replicate):
        raise CheckpointFormatError(where, "replicated across the ddp dimension", str(placements), _MERGE)
    last = placements[-1]
    if type(last) is Shard:
        return int(last.dim)
    if isinstance(last, Replicate):
        return None
    raise CheckpointFormatError(where, "Shard(d) or Replicate placements", str(placements), _MERGE)


def _info(name: str, value: Any, file: Path) -> TensorInfo:
    return TensorInfo(name, dtype_code(value.dtype), tuple(value.shape), file)


def _local(value: Any) -> torch.Tensor:
    return value._local_tensor if hasattr(value, "_local_tensor") else value


def _row(blocks: list[torch.Tensor], index: int, name: str, file: Path) -> torch.Tensor:
    for block in blocks:
        if index < block.shape[0]:
            return block[index]
        index -= block.shape[0]
    raise CheckpointFormatError(f"{file} tensor '{name}'", "a row inside the tensor", "an index past it", _MERGE)


_MERGE = "merge the checkpoint with verl.model_merger (and analyse the merged folder)"
