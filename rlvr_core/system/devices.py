"""Device strings: the one parser, used by every command, the worker and `rlvr serve`.

Accepted: `auto` (CUDA when torch sees a GPU, else the CPU), `cpu`, `cuda` (the current GPU), `cuda:N`.
`parse_device` checks the text without importing torch (the worker and the dashboard use it);
`resolve_device` turns it into a `torch.device` and checks that a requested GPU is visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

_DEVICE = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


@dataclass(frozen=True)
class Device:
    """A parsed device string."""

    kind: str
    """`auto`, `cpu` or `cuda`."""
    index: int | None = None
    """The GPU index of `cuda:N`, else None."""

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(text: str, allow_auto: bool = True) -> Device:
    """`auto`, `cpu`, `cuda` or `cuda:N` as a `Device`; anything else is a UsageError naming --device."""
    match = _DEVICE.fullmatch(str(text).strip())
    kinds = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
    if (
        match is None
        or (match.group(2) is not None and match.group(1) != "cuda")
        or (match.group(1) == "auto" and not allow_auto)
    ):
        raise UsageError("--device", kinds, repr(text), "pass one of those")
    index = match.group(2)
    return Device(match.group(1), None if index is None else int(index))


def visible_devices(text: str) -> str:
    """The CUDA_VISIBLE_DEVICES value a job on device `text` gets (`cpu`: none; `cuda`: the worker's own
    setting, else GPU 0; `cuda:N`: GPU N)."""
    import os

    device = parse_device(text, allow_auto=False)
    if device.kind == "cpu":
        return ""
    if device.index is None:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "0")
    return str(device.index)


def resolve_device(text: str) -> torch.device:
    """The torch device for `text`: `auto` is CUDA when available, else the CPU; an unavailable CUDA device
    is a UsageError."""
    import torch

    device = parse_device(text)
    if device.kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device",
            "a visible CUDA GPU",
            "torch.cuda.is_available() is False",
            "use --device cpu, or install the CUDA build of torch==2.13.0",
        )
    return torch.device(str(device))
