"""Data roots: the allow-list of folders where runs, base models and logs may be read on a shared server.

A path is allowed when its real location (every symlink followed, every `..` collapsed, by
`os.path.realpath`) lies inside the real location of one of the roots. A relative path is taken relative
to each root in turn. With no roots configured (a single user on a laptop) every path is allowed.
Nothing here reads weights or imports torch: the dashboard uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PathNotAllowedError
from ..readers.layout import step_of

_FIX = (
    "choose a folder under one of them, or add its parent to `data_roots` in the config file "
    "(or $RLVR_DATA_ROOTS, folders separated by ':')"
)


def _real(roots: list[Path]) -> list[Path]:
    return [Path(os.path.realpath(Path(r).expanduser())) for r in roots]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def allowed_path(path: str | Path, roots: list[Path]) -> Path:
    """The real path of `path` when it lies under one of `roots` (any path when `roots` is empty).

    Raises PathNotAllowedError naming the path, the roots, and where it really leads."""
    given = Path(path).expanduser()
    if not roots:
        return Path(os.path.realpath(given))
    real_roots = _real(roots)
    candidates = [given] if given.is_absolute() else [root / given for root in real_roots]
    existing = [c for c in candidates if c.exists()] or candidates[:1]
    real = Path(os.path.realpath(existing[0]))
    if any(_inside(real, root) for root in real_roots):
        return real
    via = "" if real == given else f" (it leads to {real})"
    raise PathNotAllowedError(
        str(path), "a path under the data roots " + ", ".join(str(r) for r in roots), f"a path outside them{via}", _FIX
    )


def find_runs(roots: list[Path], max_depth: int = 3, limit: int = 500) -> list[Path]:
    """Folders under `roots` (at most `max_depth` levels down) that hold checkpoint folders of a known
    layout (`checkpoint-N/`, `global_step_N/`, ...), sorted; symlinks leaving the roots are skipped."""
    real_roots = _real(roots)
    found: list[Path] = []
    frontier = [(root, 0) for root in real_roots if root.is_dir()]
    while frontier and len(found) < limit:
        folder, depth = frontier.pop()
        try:
            children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")]
        except OSError:
            continue
        if any(step_of(c.name) is not None for c in children):
            found.append(folder)
            continue
        if depth < max_depth:
            for child in children:
                real = Path(os.path.realpath(child))
                if any(_inside(real, root) for root in real_roots):
                    frontier.append((real, depth + 1))
    return sorted(set(found))
