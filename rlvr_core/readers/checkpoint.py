"""Reading Hugging Face checkpoints one tensor at a time.

A checkpoint is a folder holding `model.safetensors`, or shards listed in `model.safetensors.index.json`
(`weight_map`: tensor name -> shard file). `Checkpoint(path)` reads and validates only the safetensors
headers (the 8-byte length plus the JSON table of names, dtypes, shapes and byte offsets), so opening a
15 GB model costs milliseconds; `read_tensor(name)` then loads one tensor with `safetensors.safe_open`.
Header validation catches a truncated file (a tensor whose bytes end past the end of the file) and a file
that is not safetensors at all before any work is done.

The fingerprint hashes every header, the index file, and each file's size and mtime: an unchanged
checkpoint keeps its fingerprint, and a rewritten one gets a new one. Torch is imported only to read a
tensor, so the dashboard can list checkpoints without it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointFormatError, TensorMismatchError

if TYPE_CHECKING:  # pragma: no cover
    import torch

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the safetensors header describes it."""

    name: str
    dtype: str
    """safetensors dtype code: `F32`, `F16`, `BF16`, ..."""
    shape: tuple[int, ...]
    file: Path


def has_weights(folder: Path) -> bool:
    """True when `folder` holds a single-file or sharded safetensors checkpoint."""
    return (folder / SINGLE_FILE).is_file() or (folder / INDEX_FILE).is_file()


class Checkpoint:
    """A validated safetensors checkpoint folder; tensors are read on demand, one at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        files, index_bytes = _weight_files(self.path)
        self.files = files
        self.tensors: dict[str, TensorInfo] = {}
        digest = hashlib.sha256(index_bytes)
        for file in files:
            header_bytes, header = read_header(file)
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}:".encode())
            digest.update(header_bytes)
            for name, entry in header.items():
                if name == "__metadata__":
                    continue
                if name in self.tensors:
                    raise CheckpointFormatError(
                        f"{file}",
                        "each tensor in one shard",
                        f"'{name}' also in {self.tensors[name].file.name}",
                        "rewrite the checkpoint with save_pretrained(safe_serialization=True)",
                    )
                self.tensors[name] = TensorInfo(name, entry["dtype"], tuple(entry["shape"]), file)
        self.fingerprint = digest.hexdigest()[:24]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """tensor name -> stored shape, for `check_same_tensors`."""
        return {name: info.shape for name, info in self.tensors.items()}

    def read_tensor(self, name: str) -> torch.Tensor:
        """Load one tensor (CPU, stored dtype) without mapping the rest of the shard."""
        from safetensors import safe_open

        info = self.tensors[name]
        try:
            with safe_open(str(info.file), framework="pt") as handle:
                return handle.get_tensor(name)
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointFormatError(
                f"{info.file} tensor '{name}'",
                "a readable safetensors tensor",
                f"{type(exc).__name__}: {exc}",
                "re-copy or re-save this checkpoint",
            ) from exc


_BASE_FIX = "pass the base model this run started from"


def check_same_tensors(
    base: Mapping[str, tuple[int, ...]],
    other: Mapping[str, tuple[int, ...]],
    names: Iterable[str],
    base_where: str,
    other_where: str,
    other_label: str = "step's",
) -> None:
    """The one base-vs-step check: each of `names` (tensors of `other`: a step checkpoint, a model being
    trained) exists in the base with the same shape. Shapes are name -> tuple mappings (`Checkpoint.shapes`,
    or a model's parameters). Raises TensorMismatchError naming the tensor, both shapes and where."""
    for name in names:
        shape = tuple(other[name])
        if name not in base:
            raise TensorMismatchError(
                f"tensor '{name}'",
                f"present in the base {base_where}",
                f"no such tensor there; {other_where} has it with shape {shape}",
                _BASE_FIX,
            )
        if tuple(base[name]) != shape:
            raise TensorMismatchError(
                f"tensor '{name}'",
                f"shape {shape} (the {other_label}) in {other_where}",
                f"shape {tuple(base[name])} in the base {base_where}",
                _BASE_FIX,
            )


def check_none_missing(expected: Iterable[str], present: Mapping[str, object], where: str) -> None:
    """Every tensor of `expected` (the base's selection) is also in `present` (a step checkpoint)."""
    missing = sorted(set(expected) - set(present))
    if missing:
        raise TensorMismatchError(
            f"tensor '{missing[0]}'",
            f"present in {where} (as in the base)",
            f"missing there ({len(missing)} selected base tensor(s) missing)",
            "re-save the full checkpoint, or pass the matching base model",
        )


def read_header(file: Path) -> tuple[bytes, dict]:
    """Return the raw JSON header bytes and the parsed header of one safetensors file, validated."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _not_safetensors(file, f"a file of {size} bytes")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(size - 8, _MAX_HEADER):
            raise _not_safetensors(file, f"a header length of {length} bytes in a file of {size} bytes")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _not_safetensors(file, "a header that is not JSON") from None
    if not isinstance(header, dict):
        raise _not_safetensors(file, "a header that is not a JSON object")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = entry["data_offsets"]
            dtype, shape = entry["dtype"], entry["shape"]
        except (KeyError, TypeError, ValueError):
            raise _not_safetensors(file, f"a malformed entry for '{name}'") from None
        if end > data_size or start > end:
            raise CheckpointFormatError(
                f"{file} tensor '{name}'",
                f"its bytes {start}..{end} inside the {data_size}-byte data section",
                f"a file that ends {end - data_size} bytes too early (truncated)",
                "re-copy or re-download this shard; the file was cut short",
            )
        if not isinstance(dtype, str) or not isinstance(shape, list):
            raise _not_safetensors(file, f"a malformed dtype or shape for '{name}'")
    return raw, header


def _not_safetensors(file: Path, found: str) -> CheckpointFormatError:
    return CheckpointFormatError(
        str(file),
        "a safetensors file (8-byte header length, then a JSON header)",
        found,
        "point the tool at safetensors weights; convert others with "
        "model.save_pretrained(DIR, safe_serialization=True)",
    )


def _weight_files(folder: Path) -> tuple[list[Path], bytes]:
    """The safetensors files of a checkpoint folder, and the index bytes (b'' for a single file)."""
    if not folder.is_dir():
        raise CheckpointFormatError(
            str(folder), "a checkpoint folder", "no such folder", "check the path (a Hugging Face model folder)"
        )
    index = folder / INDEX_FILE
    if index.is_file():
        raw = index.read_bytes()
        try:
            weight_map = json.loads(raw)["weight_map"]
            names = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointFormatError(
                str(index),
                "a JSON object with a 'weight_map'",
                "something else",
                "re-save the checkpoint with save_pretrained",
            ) from None
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointFormatError(
                str(index),
                f"its {len(names)} shard files in {folder}",
                f"missing {', '.join(missing[:3])}",
                "copy the missing shards",
            )
        return [folder / n for n in names], raw
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE], b""
    raise CheckpointFormatError(str(folder), f"{SINGLE_FILE} or {INDEX_FILE}", _describe(folder), _remedy(folder))


def _describe(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())[:6]
    return "files: " + ", ".join(names) if names else "an empty folder"


def _remedy(folder: Path) -> str:
    if (folder / "adapter_model.safetensors").is_file():
        return "this is a LoRA adapter: merge it into the base (peft merge_and_unload) and save_pretrained"
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        return "convert the PyTorch weights: model.save_pretrained(DIR, safe_serialization=True)"
    return "point at a Hugging Face model folder saved with save_pretrained"
