"""The safetensors header of one file, read and checked completely before any tensor is used.

The format (https://github.com/huggingface/safetensors, its `validate` in safetensors/src/tensor.rs): 8
bytes little-endian header length N, N bytes of a JSON object, then the data section. The object maps each
tensor name to `{"dtype", "shape", "data_offsets": [start, end]}` (offsets into the data section) and may
hold `"__metadata__"`, a string-to-string map. Checked here, each with a one-line error naming the file
and tensor:

- the header length fits the file (and 100 MiB); the header is UTF-8 JSON (not too deeply nested), an object;
- every entry is an object with a known dtype string, a shape of non-negative integers and two integer
  offsets with start <= end, whose span is exactly the tensor's size (elements x dtype bytes);
- the entries, sorted by offset, tile the data section exactly: no overlap, no gap, nothing past its end
  (a truncated file), nothing left after it;
- `__metadata__`, when present, maps strings to strings.

Plain Python: no torch.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from ..errors import CheckpointFormatError

MAX_HEADER = 100 * 1024 * 1024
DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
}
"""Bytes per element of each safetensors dtype this tool reads (sub-byte dtypes are refused)."""


def read_header(file: Path) -> tuple[bytes, dict]:
    """The raw JSON header bytes and the parsed header of one safetensors file, fully validated."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise not_safetensors(file, f"a file of {size} bytes")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(size - 8, MAX_HEADER):
            raise not_safetensors(file, f"a header length of {length} bytes in a file of {size} bytes")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise not_safetensors(file, "a header that is not JSON") from None
    if not isinstance(header, dict):
        raise not_safetensors(file, "a header that is not a JSON object")
    _check_metadata(file, header.get("__metadata__"))
    spans = sorted((_check_entry(file, name, entry), name) for name, entry in header.items() if name != "__metadata__")
    _check_tiling(file, spans, size - 8 - length)
    return raw, header


def _check_metadata(file: Path, metadata: object) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointFormatError(
            f"{file} __metadata__",
            "a map of strings to strings",
            f"{type(metadata).__name__} {str(metadata)[:60]}",
            _RESAVE,
        )


def _check_entry(file: Path, name: str, entry: object) -> tuple[int, int]:
    """(start, end) of one tensor entry, checked."""
    where = f"{file} tensor '{name}'"
    if not isinstance(entry, dict):
        raise CheckpointFormatError(where, "an object with dtype, shape and data_offsets", repr(entry)[:60], _RESAVE)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise CheckpointFormatError(where, f"a dtype among {', '.join(DTYPE_BYTES)}", repr(dtype)[:40], _RESAVE)
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise CheckpointFormatError(where, "a shape of non-negative integers", repr(shape)[:60], _RESAVE)
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise CheckpointFormatError(
            where, "data_offsets [start, end], integers with 0 <= start <= end", repr(offsets)[:60], _RESAVE
        )
    start, end = offsets
    expected = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - start != expected:
        raise CheckpointFormatError(where, f"{expected} bytes ({dtype} x {shape})", f"{end - start} bytes", _RESAVE)
    return start, end


def _check_tiling(file: Path, spans: list[tuple[tuple[int, int], str]], data_size: int) -> None:
    position = 0
    for (start, end), name in spans:
        if start != position:
            found = (
                f"bytes {position}..{start} claimed by no tensor"
                if start > position
                else f"an overlap with the tensor before it (starts at {start}, the previous ends at {position})"
            )
            raise CheckpointFormatError(f"{file} tensor '{name}'", "tensors that tile the data section", found, _RESAVE)
        position = end
    if position > data_size:
        raise CheckpointFormatError(
            f"{file} tensor '{spans[-1][1]}'",
            f"its bytes ending inside the {data_size}-byte data section",
            f"a file that ends {position - data_size} bytes too early (truncated)",
            "re-copy or re-download this shard; the file was cut short",
        )
    if position < data_size:
        raise CheckpointFormatError(
            str(file),
            f"a data section of {position} bytes (what the header lists)",
            f"{data_size - position} bytes more",
            _RESAVE,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_RESAVE = "re-save the checkpoint with save_pretrained(safe_serialization=True), or re-copy the file"


def not_safetensors(file: Path, found: str) -> CheckpointFormatError:
    return CheckpointFormatError(
        str(file),
        "a safetensors file (8-byte header length, then a JSON header)",
        found,
        "point the tool at safetensors weights; convert others with "
        "model.save_pretrained(DIR, safe_serialization=True)",
    )
