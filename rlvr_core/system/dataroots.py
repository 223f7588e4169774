"""Data roots: the allow-list of folders where runs, base models, logs and dataset files may be read on a
shared server, checked all the way down.

A path is allowed when its real location (every symlink followed, every `..` collapsed, by
`os.path.realpath`) lies inside the real location of one of the roots. With no roots configured (a single
user on a laptop) every path is allowed.

- `allowed_path(path, roots)`: the dashboard's check of a typed path (a relative path is taken under each
  root in turn; it must exist).
- `activate(roots)` / `guard(path)`: the check at the moment a file is opened. The commands that read
  users' inputs (`rlvr analyze`, `logs`, `substitute`, `evaluate`, `compare`, whether run from a shell or
  as a job) activate the configured roots, and the readers guard every file they open: each checkpoint
  folder, its index, every shard the index names, the files copied or loaded beside them, log files and
  dataset files. So a symlinked `checkpoint-N` inside a root, an index naming a shard by an absolute or
  `../` path, or a base folder made of symlinks cannot lead outside the roots.

May import: `rlvr_core.errors`. Nothing here reads weights or imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PathNotAllowedError, UsageError

_FIX = (
    "choose a folder under one of them, or add its parent to `data_roots` in the config file "
    "(or $RLVR_DATA_ROOTS, folders separated by ':')"
)
_ACTIVE: list[Path] = []


def real_roots(roots: list[Path]) -> list[Path]:
    return [Path(os.path.realpath(Path(r).expanduser())) for r in roots]


def inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def allowed_path(path: str | Path, roots: list[Path], kind: str = "file or folder", must_exist: bool = True) -> Path:
    """The real path of `path` when it lies under one of `roots` (any existing path when `roots` is empty).

    Raises PathNotAllowedError naming the path, the roots, and where it really leads; UsageError when
    nothing exists there (unless not `must_exist`: a log a watched trainer has not written yet)."""
    if any(c in str(path) for c in "\x00\n\r"):
        raise UsageError(repr(str(path)), f"the path of a {kind}", "a NUL byte or line break in it", "retype the path")
    given = Path(path).expanduser()
    if not roots:
        real = Path(os.path.realpath(given))
        if not real.exists() and must_exist:
            raise UsageError(str(path), f"an existing {kind}", f"no such {kind}", "check the path")
        return real
    reals = real_roots(roots)
    candidates = [given] if given.is_absolute() else [root / given for root in reals]
    real = Path(os.path.realpath(next((c for c in candidates if c.exists()), candidates[0])))
    if not any(inside(real, root) for root in reals):
        via = "" if real == given else f" (it leads to {real})"
        raise PathNotAllowedError(
            str(path),
            "a path under the data roots " + ", ".join(str(r) for r in roots),
            f"a path outside them{via}",
            _FIX,
        )
    if not real.exists() and must_exist:
        where = "" if given.is_absolute() else " under any of the data roots"
        raise UsageError(str(path), f"an existing {kind}", f"no such {kind}{where}", "check the path")
    return real


def activate(roots: list[Path] | tuple[str, ...]) -> None:
    """Guard every file the readers open from now on in this process (no roots: no restriction)."""
    _ACTIVE[:] = real_roots([Path(r) for r in roots])


def active() -> list[Path]:
    return list(_ACTIVE)


def guard(path: str | Path) -> Path:
    """`path` itself when no roots are active or its real location lies under one; else PathNotAllowedError."""
    if not _ACTIVE:
        return Path(path)
    real = Path(os.path.realpath(Path(path).expanduser()))
    if any(inside(real, root) for root in _ACTIVE):
        return Path(path)
    via = "" if str(real) == str(path) else f" (it leads to {real})"
    raise PathNotAllowedError(
        str(path), "a file under the data roots " + ", ".join(str(r) for r in _ACTIVE), f"one outside them{via}", _FIX
    )
