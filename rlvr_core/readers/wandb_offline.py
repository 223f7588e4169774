"""W&B offline runs (`wandb/offline-run-*/run-*.wandb`) read into (step, name, value), without the network.

A `.wandb` file is W&B's transaction log: a 7-byte header (`:W&B`, magic 0xBEE1, version 0) and then
LevelDB log-format blocks of 32 KiB, each record a CRC-32 (seeded with the record type), a length, a type
(FULL, FIRST, MIDDLE, LAST: a record split over blocks) and the bytes of one protobuf `Record`. The
framing is read here as wandb 0.19.11's own `wandb/sdk/internal/datastore.py` reads it (wandb 0.31 moved
that reader into its Go core and ships no Python one); each record is parsed with the installed wandb's
own protobuf class (`wandb.proto.wandb_internal_pb2.Record`), so `pip install 'rlvr-lens[wandb]'` is needed to read
these files. History records give the logged values: each item's key and JSON value. The step is the
framework's own when a row carries it (`train/global_step`, `eval/global_step`, ...; OpenRLHF logs
without `step=`), else W&B's `_step` (the history record's step number). A file cut short (a run still
writing) is read up to its last whole record.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

from ..errors import RlvrError

HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
BLOCK, RECORD_HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_CRC_SEED = {t: zlib.crc32(bytes([t])) & 0xFFFFFFFF for t in (FULL, FIRST, MIDDLE, LAST)}


def is_wandb_file(path: Path) -> bool:
    return path.name.endswith(".wandb")


def read_wandb(data: bytes, file: Path, step_keys: tuple[str, ...], error: type[RlvrError]) -> list[dict]:
    """One dict per history row (`_step` included) of a `.wandb` file's bytes."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        raise error(str(file), "the wandb package to parse W&B's records", "no wandb installed",
                    "pip install 'rlvr-lens[wandb]' (or export the run's history as CSV/JSONL)") from None  # fmt: skip
    if not data.startswith(HEADER):
        raise error(str(file), "a W&B transaction log (:W&B header)", repr(data[:7]), "point at the run-*.wandb file")
    rows = []
    for payload in _records(data):
        record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
        try:
            record.ParseFromString(payload)
        except Exception:  # protobuf's DecodeError: a record of a newer format, or a damaged one
            continue
        if record.WhichOneof("record_type") == "history":
            rows.append(_row(record.history, step_keys))
    return rows


def _records(data: bytes):
    """The payloads of the log's whole records (split records joined), in order."""
    index, pieces = len(HEADER), b""
    while index + RECORD_HEADER <= len(data):
        left = BLOCK - index % BLOCK
        if left < RECORD_HEADER:  # a block's zero-padded tail
            index += left
            continue
        checksum, length, kind = struct.unpack_from("<IHB", data, index)
        body = data[index + RECORD_HEADER : index + RECORD_HEADER + length]
        if kind not in _CRC_SEED or len(body) != length or zlib.crc32(body, _CRC_SEED[kind]) & 0xFFFFFFFF != checksum:
            return  # cut short (a run still writing) or damaged: what came before stands
        index += RECORD_HEADER + length
        if kind == FULL:
            yield body
        elif kind == FIRST:
            pieces = body
        elif kind == MIDDLE:
            pieces += body
        else:
            yield pieces + body


def _row(history, step_keys: tuple[str, ...]) -> dict:
    row: dict = {"_step": history.step.num}
    for item in history.item:
        key = item.key or "/".join(item.nested_key)
        try:
            row[key] = json.loads(item.value_json)
        except ValueError:
            continue
    return {k: v for k, v in row.items() if k in step_keys or _finite(v)}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
