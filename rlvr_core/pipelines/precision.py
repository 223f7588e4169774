"""Which precision every result came from, and when a 16-bit export erased the update being measured.

Real RLVR updates are small: at lr 1e-6 most of dW lies below bf16's spacing of W (2^-8 relative), so
`bf16(W_step) - W_base` is exactly 0 in most entries and its spectrum is the rounding's, not the update's
(measured on verl's own saves: an update of RMS 1e-5 had 90% of its entries zeroed by the merger's bf16
cast, and sigma1/sigma2 fell from 47 to 5.8). Each analysed checkpoint records where its weights came
from (`weights_source`: `safetensors`, `fsdp-shards`, `dcp`), the dtypes its analysed matrices were
stored in (`weights_dtype`), and the share of dW's entries that are exactly 0 (`dw_zero_fraction`,
weighted by matrix size). `warnings` says so, with the share and how to get the exact update, when dW of a
step comes from 16-bit weights and at least `ZERO_WARNING` of its entries are exactly 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from ..readers.checkpoint import Checkpoint
    from ..readers.naming import TensorRole

ZERO_WARNING = 0.25
"""The share of exactly-zero dW entries from which a 16-bit step is reported."""
SIXTEEN_BIT = ("BF16", "F16")
EXACT = (
    "read the trainer's own fp32 files instead: verl's global_step_N/actor/ (model_world_size_W_rank_R.pt, read "
    "directly), OpenRLHF's DeepSpeed save <ckpt.path>/_actor/global_stepN/ (the ZeRO partitions, read directly), "
    'a torch.distributed.checkpoint folder, or an fp32 save_pretrained (see docs/how-to/frameworks.md, "From verl '
    '/ OpenRLHF / TRL")'
)


def record(ckpt: Checkpoint, roles: Iterable[TensorRole], layers: pa.Table) -> dict[str, Any]:
    """The `checkpoints` columns `weights_source`, `weights_dtype` and `dw_zero_fraction` of one step."""
    dtypes = sorted({ckpt.tensors[role.stored].dtype for role in roles})
    rows = [r for r in layers.to_pylist() if r["target"] == "dW" and r.get("zero_fraction") is not None]
    size = sum(r["rows"] * r["cols"] for r in rows)
    zeros = sum(r["zero_fraction"] * r["rows"] * r["cols"] for r in rows) / size if size else None
    return {"weights_source": ckpt.source, "weights_dtype": "+".join(dtypes) or None, "dw_zero_fraction": zeros}


def warnings(step: int, row: dict[str, Any]) -> list[str]:
    """One line when dW of `step` comes from 16-bit weights and much of it is exactly 0, else none."""
    share, dtypes = row.get("dw_zero_fraction"), (row.get("weights_dtype") or "").split("+")
    if share is None or share < ZERO_WARNING or not any(d in SIXTEEN_BIT for d in dtypes):
        return []
    return [
        f"step {step}: dW comes from {'/'.join(dtypes)} weights ({row.get('weights_source')}) and {share:.0%} of its "
        f"entries are exactly 0: updates below the 16-bit spacing of W were rounded away, so its spectra and "
        f"rank-1 measures describe the rounding as much as the update. For the exact update, {EXACT}"
    ]
