"""Runs found under the data roots (the Runs page's picker). The allow-list itself is
`rlvr_core.system.dataroots` (re-exported here: `allowed_path`)."""

from __future__ import annotations

import os
from pathlib import Path

from ..readers.layout import step_of
from ..system.dataroots import allowed_path, inside, real_roots

__all__ = ["allowed_path", "find_runs"]


def find_runs(roots: list[Path], max_depth: int = 3, limit: int = 500) -> list[Path]:
    """Folders under `roots` (at most `max_depth` levels down) that hold checkpoint folders of a known
    layout (`checkpoint-N/`, `global_step_N/`, ...), sorted; symlinks leaving the roots are skipped."""
    reals = real_roots(roots)
    found: list[Path] = []
    frontier = [(root, 0) for root in reals if root.is_dir()]
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
                if any(inside(real, root) for root in reals):
                    frontier.append((real, depth + 1))
    return sorted(set(found))
