"""Publishing atomically, and never replacing what the tool did not write.

`publishing(final)` builds a folder under a hidden temporary name beside the target, then swaps it into
place with `os.replace`, so readers see the old folder or the new one, never half of one. Every folder
the tool writes goes through it: the cache's step and evaluation folders, and the checkpoint folders of
`rlvr substitute` and the demo. Single files go through `write_file_atomic`.

Outside the cache (`marker=` given) a folder is replaced only when this tool wrote it: `guard_output`
refuses, before any work, an output folder that exists without the tool's marker file (and is not empty),
or that is `/`, the home folder, an input, an ancestor of an input, the cache or an ancestor of the cache.

Leftovers of killed writers: each temporary folder `.tmp-<tag>-<id>` (and the folder `.old-<tag>-<id>`
that holds the replaced output until it is deleted) carries, from the moment it is created, an ownership
file `.rlvr-lens-writer` naming its writer (`RLVR Lens tmp folder <tag>-<id>`), and has a lock file
`.lock-<tag>-<id>` that its writer holds (`fcntl.flock`) while it lives. The next write beside them removes
a leftover only when both hold: its ownership file names exactly that folder, and nobody holds its lock (the
writer died, however it died). A folder that merely looks like a leftover (the user's own
`.old-backup-deadbeef`) carries no such file and is never touched, however old it is.

Single files (`rlvr report`, `rlvr figure`) go through `guard_output_file`: never an input, never inside the
cache, never a folder, and never an existing file unless its contents show this tool wrote it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputFolderError

MARKER = ".rlvr-lens"
"""The file in every folder the tool publishes outside the cache: its mark of ownership."""
OUTPUT_MARK = b"RLVR-Lens-output"
"""The mark inside every single file the tool writes for people (reports, figures), within its first or last
`_MARK_WINDOW` bytes: an existing file is replaced only when it carries it."""
_MARK_WINDOW = 4096
WRITER_FILE = ".rlvr-lens-writer"
"""The ownership file inside every temporary and moved-aside folder, naming its writer."""
_SWAP_TRIES = 20
_LEFTOVER = re.compile(r"^\.(?P<kind>tmp|old)-(?P<tag>.+)-(?P<id>[0-9a-f]{8})$")


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


def guard_output_file(out: Path, inputs: Iterable[Path] = (), protected: Iterable[Path] = ()) -> Path:
    """`out`, resolved, when the tool may write that single file: not a folder, not an input, not inside
    `protected` (the cache), and, when it exists, a regular file carrying `OUTPUT_MARK` (this tool's earlier
    output). Raises OutputFolderError naming the file, what it is, and the fix; changes nothing."""
    real = Path(os.path.realpath(Path(out).expanduser()))
    fix = "choose a new file name (or delete that file yourself first)"
    for path in inputs:
        if real == Path(os.path.realpath(Path(path).expanduser())):
            raise OutputFolderError(str(out), "a new file to write", f"an input ({path})", fix)
    for path in protected:
        other = Path(os.path.realpath(Path(path).expanduser()))
        if real == other or other in real.parents:
            raise OutputFolderError(str(out), "a file outside the cache", f"a path inside the cache ({other})", fix)
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return real
    if stat.S_ISDIR(mode):
        raise OutputFolderError(
            str(out), "a file name", "a folder", f"name a file inside it (e.g. {Path(out) / 'report.html'})"
        )
    if not stat.S_ISREG(mode) or not _carries_mark(real):
        found = "an existing file this tool did not write" if stat.S_ISREG(mode) else "something that is not a file"
        raise OutputFolderError(str(out), "a new file, or one this tool wrote before", found, fix)
    return real


def _carries_mark(file: Path) -> bool:
    with open(file, "rb") as handle:
        head = handle.read(_MARK_WINDOW)
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _MARK_WINDOW))
        return OUTPUT_MARK in head or OUTPUT_MARK in handle.read()


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
        lock.write(_claim("lock", f"{tag}-{ident}"))
        lock.flush()
        _owned_folder(tmp, "tmp", f"{tag}-{ident}")
        try:
            yield tmp
            if marker is not None and not (tmp / marker).exists():
                (tmp / marker).write_text("written by RLVR Lens\n")
            (tmp / WRITER_FILE).unlink()
            readable_as_umask(tmp)
            _swap_in(tmp, final, final.parent / f".old-{tag}-{ident}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            lock_file.unlink(missing_ok=True)


def umask() -> int:
    """This process's umask, read without changing it (Linux: /proc/self/status), else the usual 0o022."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def readable_as_umask(folder: Path) -> None:
    """Give every file and folder under `folder` the read (and, for folders, search) bits the umask allows,
    as a plain `open()` would have: safetensors writes its files 0600, so a checkpoint the image's build (root)
    or an admin wrote could not be read by the service's user."""
    allowed = ~umask()
    for path in (folder, *folder.rglob("*")):
        if path.is_symlink():
            continue
        wanted = (0o555 if path.is_dir() else 0o444) & allowed
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & wanted != wanted:
            path.chmod(mode | wanted)


def _claim(kind: str, name: str) -> str:
    """The text of an ownership file: which kind of folder (tmp, old) or lock, and its `<tag>-<id>`."""
    return f"RLVR Lens {kind} folder {name}\n"


def _owned_folder(folder: Path, kind: str, name: str) -> None:
    """Create `folder` (it must not exist) holding its ownership file."""
    folder.mkdir()
    (folder / WRITER_FILE).write_text(_claim(kind, name))


def _swap_in(tmp: Path, final: Path, old: Path) -> None:
    """Move `tmp` to `final`. An existing `final` is first moved into `old`, a folder this writer creates
    with its ownership file (so a writer killed at any moment leaves nothing it cannot prove it wrote), and
    `old` is deleted at the end. Another writer can publish between the two renames (then `final` is a
    non-empty folder again): move that one aside too and retry."""
    try:
        for attempt in range(_SWAP_TRIES):
            if final.exists():
                if not old.exists():
                    _owned_folder(old, "old", old.name.removeprefix(".old-"))
                try:
                    os.replace(final, old / f"previous-{attempt}")
                except FileNotFoundError:  # another writer moved it aside first
                    pass
            try:
                os.replace(tmp, final)
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue  # someone published in between: go round again
            return
        raise OSError(errno.EBUSY, f"could not publish {final}: other writers kept replacing it")
    finally:
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary and moved-aside folders of dead writers in `folder` (those whose ownership file
    names them and whose lock nobody holds); returns what was removed. Nothing else is ever touched."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if match is None or entry.is_symlink() or not entry.is_dir():
            continue
        name = f"{match['tag']}-{match['id']}"
        lock_file = folder / f".lock-{name}"
        if _proves(entry / WRITER_FILE, _claim(match["kind"], name)) and not _held(lock_file):
            shutil.rmtree(entry, ignore_errors=True)
            if _proves(lock_file, _claim("lock", name)):
                lock_file.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _proves(file: Path, claim: str) -> bool:
    """True when `file` is a regular file (not a link) holding exactly `claim`."""
    try:
        if not stat.S_ISREG(file.lstat().st_mode):
            return False
        with open(file, "rb") as handle:
            return handle.read(len(claim) + 1) == claim.encode()
    except OSError:
        return False


def _held(lock_file: Path) -> bool:
    """True when a live writer holds `lock_file` (a missing lock file is held by nobody; anything but a
    regular file counts as held, so a FIFO or link of that name never blocks or misleads the clean-up)."""
    try:
        if not stat.S_ISREG(lock_file.lstat().st_mode):
            return True
        with open(lock_file) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except FileNotFoundError:
        return False
    except OSError:  # held: its writer is alive
        return True


def write_file_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary file beside `path`, then move it onto `path` with os.replace."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
