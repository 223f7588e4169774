"""Which reader a checkpoint folder needs: the one place that tells the formats apart.

- a Hugging Face folder (`model.safetensors` or an index of shards): `Checkpoint`;
- verl's FSDP training folder (`model_world_size_W_rank_R.pt`, the fp32 master weights): `FsdpCheckpoint`;
- a PyTorch Distributed Checkpoint (`.metadata` + `*.distcp`): `DcpCheckpoint`;
- a DeepSpeed ZeRO tag folder (OpenRLHF's `_actor/global_stepN/`, the fp32 partitions): `ZeroCheckpoint`.
Every pipeline opens checkpoints through `open_checkpoint`, so each works on all four.
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import Checkpoint, has_weights
from .dcp import DcpCheckpoint, is_dcp_folder
from .fsdp import FsdpCheckpoint, is_fsdp_folder
from .zero import ZeroCheckpoint, is_zero_folder


def open_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint in `path`, read by the reader its files call for (safetensors first)."""
    folder = Path(path)
    if not has_weights(folder):
        if is_fsdp_folder(folder):
            return FsdpCheckpoint(folder)
        if is_dcp_folder(folder):
            return DcpCheckpoint(folder)
        if is_zero_folder(folder):
            return ZeroCheckpoint(folder)
    return Checkpoint(folder)


def holds_checkpoint(folder: Path) -> bool:
    """True when `folder` holds weights in any format the tool reads."""
    return has_weights(folder) or is_fsdp_folder(folder) or is_dcp_folder(folder) or is_zero_folder(folder)
