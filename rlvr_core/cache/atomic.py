"""Publishing atomically: build under a hidden temporary name beside the target, then swap it into place
with `os.replace`, so readers see the old folder (or file) or the new one, never half of one.

Every folder the tool writes goes through `publishing`: the cache's step and evaluation folders, and
the checkpoint folders of `rlvr substitute` and the demo. Single files go through `write_file_atomic`.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_SWAP_TRIES = 20


@contextmanager
def publishing(final: Path, tag: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder `.tmp-<tag>-<random>` beside `final`; when the block ends without
    an error it replaces `final` (an older `final` is moved aside to `.old-<tag>-<random>`, then deleted).
    On an error the temporary folder is deleted and `final` is left as it was. Two writers of the same
    folder both publish whole folders; the last one to swap wins."""
    final = Path(final)
    tag = tag or final.name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{tag}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _swap_in(tmp, final, tag)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, final: Path, tag: str) -> None:
    """Move `tmp` to `final`, first moving an existing `final` aside. Another writer can publish between
    the two renames (then `final` is a non-empty folder again): move that one aside too and retry."""
    for _ in range(_SWAP_TRIES):
        old = None
        if final.exists():
            old = final.parent / f".old-{tag}-{uuid.uuid4().hex[:8]}"
            try:
                os.replace(final, old)
            except FileNotFoundError:  # another writer moved it aside first
                old = None
        try:
            os.replace(tmp, final)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue  # someone published in between: go round again
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return
    raise OSError(errno.EBUSY, f"could not publish {final}: other writers kept replacing it")


def write_file_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary file beside `path`, then move it onto `path` with os.replace."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
