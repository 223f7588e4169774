"""Is a checkpoint that a trainer is still writing complete? (`rlvr watch` analyses only complete ones.)

A checkpoint folder is complete when
1. its weights are there: `model.safetensors`, or an index `model.safetensors.index.json` that parses and
   every shard it names exists; verl's FSDP rank files: all W of them, each a whole zip archive; a
   torch.distributed.checkpoint: its `.metadata` (written after every `.distcp` file);
2. every safetensors file is whole: its size equals 8 + the header length + the end of the last tensor
   its header declares (a file still being written is shorter, or its header does not parse yet);
3. nothing in the folder has changed for `settle` seconds (a trainer writes the config, tokenizer and
   `trainer_state.json` after the weights);
4. where the run folder holds verl's `latest_checkpointed_iteration.txt`, the step is at most the number
   it holds (verl writes that file once a checkpoint is saved); a DeepSpeed ZeRO tag folder (OpenRLHF's
   `_actor/global_stepN`): every `.pt` file a whole zip archive, and DeepSpeed's `latest` beside it naming
   this tag or a later one (DeepSpeed writes `latest` after every rank has saved).

`state(folder, settle)` says why not when it is not, in a short phrase; it never raises on a half-written
file. `scan(run_dir, handled, settle)` applies it to every checkpoint folder of a run not handled yet, and
`log_changed(log, stamp, settle)` says whether a training log grew and has settled since it was last read:
the two looks every watch makes (`rlvr watch` in its own process, and the registered watches of
`rlvr serve`). Plain Python: no torch, and only the headers are read.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import time
import zipfile
from collections.abc import Collection
from pathlib import Path

from ..errors import RlvrError
from .dcp import is_dcp_folder
from .fsdp import RANK_FILE, is_fsdp_folder
from .layout import StepCheckpoint, step_folders, step_of
from .zero import is_zero_folder

VERL_MARKER = "latest_checkpointed_iteration.txt"
"""verl's marker of the last completely saved step, in the run folder."""


def state(folder: Path, settle: float, step: int | None = None, now: float | None = None) -> str | None:
    """None when the checkpoint in `folder` is complete, else why not (see the module docstring)."""
    try:
        files = _weight_files(folder)
        for file in files:
            why = _whole(file)
            if why:
                return why
        changed = _last_change(folder)
    except (OSError, ValueError) as exc:  # being written, renamed or deleted right now
        return f"weights not all there yet ({exc})"
    quiet = settle - ((now if now is not None else time.time()) - changed)
    if quiet > 0:
        return f"changed {settle - quiet:.0f} s ago (waiting {settle:.0f} s for it to settle)"
    if step is not None:
        marker = _verl_marker(folder)
        if marker is not None and step > marker:
            return f"verl's {VERL_MARKER} says step {marker} is the last one saved"
    return None


def scan(run_dir: Path, handled: Collection[int], settle: float) -> tuple[list[StepCheckpoint], dict[int, str]]:
    """(the complete checkpoints of `run_dir` whose step is not in `handled`, by step; step -> why each
    other new one is not complete yet). Never raises: a missing run folder has no checkpoints yet."""
    ready, waiting = [], {}
    for checkpoint in step_folders(run_dir):
        if checkpoint.step in handled:
            continue
        why = state(checkpoint.path, settle, checkpoint.step)
        if why:
            waiting[checkpoint.step] = why
        else:
            ready.append(checkpoint)
    return ready, waiting


def broken_links(run_dir: Path) -> dict[str, str]:
    """Checkpoint-named links in `run_dir` that lead nowhere: name -> why (dangling, or a loop of links).
    `scan` cannot see them (they are no folders), so a watch reports them instead of skipping them silently."""
    found: dict[str, str] = {}
    try:
        children = list(Path(run_dir).iterdir())
    except OSError:
        return found
    for child in children:
        if not child.is_symlink() or step_of(child.name) is None:
            continue
        try:
            child.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 raises this for a loop
            found[child.name] = "a loop of links"
        except OSError as exc:
            found[child.name] = (
                "a loop of links"
                if exc.errno == errno.ELOOP
                else f"a link to {os.readlink(child)}, which does not exist"
            )
    return found


def log_changed(log: Path, stamp: str | None, settle: float) -> tuple[Path, str] | None:
    """(the log file, its new stamp) when the log (a file, or a folder holding one) differs from `stamp`
    and has not changed for min(settle, 5) seconds; None when there is no log yet, it is unchanged, or it
    is still being written. A stamp is "size:mtime_ns"."""
    from .trainlog import find_log_file

    try:
        file = find_log_file(log) if log.is_dir() else log
        info = file.stat()
    except (OSError, RlvrError):  # no log yet
        return None
    new = f"{info.st_size}:{info.st_mtime_ns}"
    if new == stamp or time.time() - info.st_mtime < min(settle, 5.0):
        return None
    return file, new


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files to check for wholeness ([] for verl's rank files, checked by `_ranks_whole`)."""
    if is_fsdp_folder(folder):
        _ranks_whole(folder)
        return []
    if is_zero_folder(folder):
        _zero_committed(folder)
        return []
    if (folder / ".metadata").is_file():  # torch.distributed.checkpoint writes .metadata after every .distcp
        if not is_dcp_folder(folder):
            raise ValueError("a .metadata file without .distcp files")
        return []
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        shards = sorted({folder / name for name in weight_map.values()})
        missing = [s.name for s in shards if not s.is_file()]
        if missing or not shards:
            raise ValueError(f"shards not written yet: {', '.join(missing) or 'none named'}")
        return shards
    single = folder / "model.safetensors"
    if not single.is_file():
        raise ValueError("no model.safetensors or index")
    return [single]


def _ranks_whole(folder: Path) -> None:
    """Raises ValueError until every rank file of verl's FSDP save is there and whole: a zip archive
    (`torch.save`'s format) whose end record is written, so a file still being written is not read."""
    found: dict[int, set[int]] = {}
    for file in folder.iterdir():
        match = RANK_FILE.match(file.name)
        if match:
            found.setdefault(int(match["world"]), set()).add(int(match["rank"]))
            if not zipfile.is_zipfile(file):
                raise ValueError(f"{file.name} not written completely yet")
    for world, ranks in found.items():
        if len(ranks) < world:
            raise ValueError(f"{len(ranks)} of {world} rank files written")


def _zero_committed(folder: Path) -> None:
    """Raises ValueError until the ZeRO tag folder's files are whole zips and DeepSpeed's `latest` (in the
    save folder) names this tag or a later step's."""
    for file in folder.iterdir():
        if file.suffix == ".pt" and not zipfile.is_zipfile(file):
            raise ValueError(f"{file.name} not written completely yet")
    latest = folder.parent / "latest"
    if not latest.is_file():
        raise ValueError("DeepSpeed has not written its `latest` file yet")
    tag = latest.read_text(encoding="utf-8", errors="replace").strip()
    committed, this = step_of(tag), step_of(folder.name)
    if tag != folder.name and (committed is None or this is None or committed < this):
        raise ValueError(f"DeepSpeed's `latest` names {tag[:40]!r}: {folder.name} is not committed yet")


def _whole(file: Path) -> str | None:
    """None when the file's size is what its header declares."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{file.name}: header not written yet"
        (length,) = struct.unpack("<Q", head)
        if size < 8 + length:
            return f"{file.name}: header not written yet"
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError):
            return f"{file.name}: header not readable yet"
    ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__" and isinstance(e, dict)]
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        return f"{file.name}: {size} of {expected} bytes written"
    return None


def _last_change(folder: Path) -> float:
    """The newest modification time of the folder and anything in it (one level of subfolders)."""
    times = [folder.stat().st_mtime]
    for entry in os.scandir(folder):
        times.append(entry.stat().st_mtime)
        if entry.is_dir():
            times += [sub.stat().st_mtime for sub in os.scandir(entry.path)]
    return max(times)


def _verl_marker(folder: Path) -> int | None:
    """The step in verl's marker file of the run folder (`global_step_N/actor/huggingface` or its parent)."""
    for candidate in (folder.parent, folder.parent.parent, folder.parent.parent.parent):
        marker = candidate / VERL_MARKER
        if marker.is_file():
            try:
                return int(marker.read_text().strip())
            except ValueError:
                return None
    return None
