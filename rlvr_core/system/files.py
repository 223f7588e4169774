"""Reading a user's small files (logs, configs, index and marker files) only when they are regular files.

A FIFO, a device or a socket under a name the tool expects (`trainer_state.json`, `config.json`,
`latest`) would block a plain `open()` forever, and a job reading it would hold a worker with a renewed
lease. `read_regular` opens without blocking (`O_NONBLOCK`), checks the opened file with `fstat`
(`S_ISREG`: no window between the check and the read) and reads at most `limit` bytes. Symbolic links
are followed (the Hugging Face cache is made of them); what they point at must be a regular file too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import RlvrError, UsageError

MAX_SMALL_FILE = 256 * 1024 * 1024
"""The most bytes `read_regular` reads by default (a log or config file is far smaller)."""


def read_regular(path: str | Path, error: type[RlvrError] = UsageError, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of `path` when it is a regular file of at most `limit` bytes; else `error` naming it.
    A missing file raises FileNotFoundError, as `open` would."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(str(path), "a regular file", _kind(info.st_mode), "point the tool at the file itself")
        if info.st_size > limit:
            raise error(str(path), f"a file of at most {limit} bytes", f"{info.st_size} bytes", "check the path")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1)[:limit]
    finally:
        os.close(fd)


def is_regular(path: str | Path) -> bool:
    """True when `path` (links followed) is a regular file; never blocks."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):  # fmt: skip
        if test(mode):
            return name
    return "something that is not a regular file"
