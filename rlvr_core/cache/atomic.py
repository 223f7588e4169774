"""Publishing atomically, and never replacing what the tool did not write.

`publishing(final)` builds a folder under a hidden temporary name beside the target, then swaps it into
place with `os.replace`, so readers see the old folder or the new one, never half of one. Every folder
the tool writes goes through it: the cache's step and evaluation folders, and the checkpoint folders of
`rlvr substitute` and the demo. Single files go through `write_file_atomic`.

Outside the cache (`marker=` given) a folder is replaced only when this tool wrote it: `guard_output`
refuses, before any work, an output folder that exists without the tool's marker file (and is not empty),
or that is `/`, the home folder, an input, an ancestor of an input, the cache or an ancestor of the cache.

Leftovers of killed writers: each temporary folder `.tmp-<tag>-<id>` (and the old folder it moves aside,
`.old-<tag>-<id>`) has a lock file `.lock-<tag>-<id>` that its writer holds (`fcntl.flock`) while it
lives. The next write beside them removes those whose lock nobody holds (the writer died, however it
died); leftovers without a lock file (older versions) are removed once older than `STALE_SECONDS`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputFolderError

MARKER = ".rlvr-lens"
"""The file in every folder the tool publishes outside the cache: its mark of ownership."""
STALE_SECONDS = 6 * 3600
"""Leftovers without a lock file (written by older versions) older than this are removed."""
_SWAP_TRIES = 20
_LEFTOVER = re.compile(r"^\.(tmp|old)-(?P<tag>.+)-(?P<id>[0-9a-f]{8})$")


def guard_output(final: Path, marker: str, inputs: Iterable[Path] = (), protected: Iterable[Path] = ()) -> Path:
    """`final`, resolved, when the tool may write it: see the module docstring. Raises OutputFolderError
    naming the folder, what it is, and the fix; changes nothing."""
    real = Path(os.path.realpath(Path(final).expanduser()))
    fix = "choose a new folder for the output (or one this tool wrote before)"
    forbidden = {Path("/"): "the root folder", Path(os.path.realpath(Path.home())): "the home folder"}
    if real in forbidden:
        raise OutputFolderError(str(final), "a folder the tool may replace", forbidden[real], fix)
    for kind, paths in (("an input", inputs), ("the cache", protected)):
        for path in paths:
            other = Path(os.path.realpath(Path(path).expanduser()))
            if real == other or real in other.parents:
                what = f"{kind} ({other})" if real == other else f"a folder holding {kind} ({other})"
                raise OutputFolderError(str(final), "a folder the tool may replace", what, fix)
    if real.exists():
        if not real.is_dir():
            raise OutputFolderError(str(final), "a folder", "a file", fix)
        if any(real.iterdir()) and not (real / marker).is_file():
            raise OutputFolderError(
                str(final),
                f"an empty folder, or one this tool wrote (holding {marker})",
                "a folder of other files, which it will not replace",
                fix,
            )
    return real


@contextmanager
def publishing(final: Path, tag: str | None = None, marker: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; when the block ends without an error it replaces
    `final` (an older `final` is moved aside, then deleted). On an error the temporary folder is deleted
    and `final` is left as it was. With `marker`, `final` is first checked by `guard_output` and the
    marker file is written into the new folder (unless the block wrote it). Two writers of the same folder
    both publish whole folders; the last one to swap wins."""
    final = Path(final)
    if marker is not None:
        guard_output(final, marker)
    tag = tag or final.name
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final.parent)
    ident = uuid.uuid4().hex[:8]
    tmp, lock_file = final.parent / f".tmp-{tag}-{ident}", final.parent / f".lock-{tag}-{ident}"
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tmp.mkdir()
        try:
            yield tmp
            if marker is not None and not (tmp / marker).exists():
                (tmp / marker).write_text("written by RLVR Lens\n")
            _swap_in(tmp, final, final.parent / f".old-{tag}-{ident}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            lock_file.unlink(missing_ok=True)


def _swap_in(tmp: Path, final: Path, old: Path) -> None:
    """Move `tmp` to `final`, first moving an existing `final` aside. Another writer can publish between
    the two renames (then `final` is a non-empty folder again): move that one aside too and retry."""
    for _ in range(_SWAP_TRIES):
        moved = False
        if final.exists():
            try:
                os.replace(final, old)
                moved = True
            except FileNotFoundError:  # another writer moved it aside first
                pass
        try:
            os.replace(tmp, final)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue  # someone published in between: go round again
        finally:
            if moved:
                shutil.rmtree(old, ignore_errors=True)
        return
    raise OSError(errno.EBUSY, f"could not publish {final}: other writers kept replacing it")


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary and moved-aside folders of dead writers in `folder`; returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        lock_file = folder / f".lock-{match['tag']}-{match['id']}"
        if _abandoned(entry, lock_file):
            shutil.rmtree(entry, ignore_errors=True)
            lock_file.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _abandoned(entry: Path, lock_file: Path) -> bool:
    if not lock_file.exists():
        try:
            return time.time() - entry.stat().st_mtime > STALE_SECONDS
        except OSError:
            return False
    try:
        with open(lock_file) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except OSError:  # held: its writer is alive
        return False


def write_file_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary file beside `path`, then move it onto `path` with os.replace."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
