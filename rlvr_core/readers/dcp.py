"""PyTorch Distributed Checkpoint folders read one tensor at a time, through torch's own reader.

`torch.distributed.checkpoint.save` (FSDP2 users, TorchTitan, verl's Megatron backend) writes a folder of
`.metadata` (every tensor's global size, dtype and where its chunks lie) and one `__<rank>_<n>.distcp`
file per writer. `DcpCheckpoint(folder)` is a `Checkpoint`: its tensors come from
`FileSystemReader(folder).read_metadata()`, and a read is `torch.distributed.checkpoint.load` of a state
dict holding just that tensor (`no_dist=True`: no process group), so torch reads that tensor's chunks and
nothing else; the format is torch's, never re-implemented here. Non-tensor entries (bytes, optimizer
steps) are skipped. Names are the state dict's keys as saved (nested dicts joined with dots).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointFormatError
from ..system.dataroots import guard
from .checkpoint import Checkpoint, TensorInfo, dtype_code, stat_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import torch

METADATA = ".metadata"


def is_dcp_folder(folder: Path) -> bool:
    """True when `folder` holds a torch.distributed.checkpoint (`.metadata` and `.distcp` files)."""
    try:
        return (folder / METADATA).is_file() and any(p.suffix == ".distcp" for p in folder.iterdir())
    except OSError:
        return False


class DcpCheckpoint(Checkpoint):
    """A torch.distributed.checkpoint folder; see the module docstring."""

    source = "dcp"

    def __init__(self, path: str | Path) -> None:
        self.path = guard(Path(path))
        self.config_dir = self.path
        self.files = sorted(guard(p) for p in self.path.iterdir() if p.suffix == ".distcp")
        try:
            metadata = self._reader().read_metadata()
        except Exception as exc:  # torch raises its own types for a cut or foreign .metadata
            raise CheckpointFormatError(
                str(self.path / METADATA), "the metadata torch.distributed.checkpoint.save writes",
                f"{type(exc).__name__}: {exc}"[:200], "re-copy the checkpoint folder",
            ) from None  # fmt: skip
        self.fingerprint = stat_fingerprint([self.path / METADATA, *self.files])
        self._dtypes: dict[str, torch.dtype] = {}
        self.tensors = {}
        for name, entry in metadata.state_dict_metadata.items():
            dtype = getattr(getattr(entry, "properties", None), "dtype", None)
            if dtype is None:  # bytes or other non-tensor entries
                continue
            self._dtypes[name] = dtype
            self.tensors[name] = TensorInfo(name, dtype_code(dtype), tuple(entry.size), self.path / METADATA)

    def read_tensor(self, name: str, index: int | None = None) -> torch.Tensor:
        """One tensor, loaded alone by torch's DCP reader; `index`: one first-axis slice of it."""
        import torch
        import torch.distributed.checkpoint as dcp

        target = {name: torch.empty(self.tensors[name].shape, dtype=self._dtypes[name])}
        try:
            with warnings.catch_warnings():  # "torch.distributed is disabled...": a single process is the intent
                warnings.simplefilter("ignore", UserWarning)
                dcp.load(target, storage_reader=self._reader(), no_dist=True)
        except Exception as exc:  # torch's reader raises its own types for a cut or moved file
            raise CheckpointFormatError(
                f"{self.path} tensor '{name}'", "a tensor torch.distributed.checkpoint can read",
                f"{type(exc).__name__}: {exc}"[:200], "re-copy the checkpoint folder (every .distcp file)",
            ) from None  # fmt: skip
        tensor = target[name]
        return tensor if index is None else tensor[index].clone()

    def _reader(self):
        from torch.distributed.checkpoint import FileSystemReader

        return FileSystemReader(str(self.path))
