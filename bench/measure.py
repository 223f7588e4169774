"""What the benches share: one `rlvr` process run to its end while the memory of its process tree is sampled."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (those still alive)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _status_kb(pid: int, file: str, field: str) -> int:
    try:
        return int(re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/{file}").read_text(), re.M)[1])  # type: ignore[index]
    except (OSError, TypeError):
        return 0


def tree_pss_mb(pid: int) -> float:
    """Sum of PSS (MB) of `pid` and its descendants."""
    return sum(_status_kb(p, "smaps_rollup", "Pss") for p in _tree(pid)) / 1024


PEAK_SINGLE_RSS_MB: list[float] = [0.0]
"""The largest RSS (MB) any one process of the last `run_sampled` tree reached, as sampled."""


def run_sampled(argv: list[str]) -> tuple[str, float]:
    """(stdout, peak tree PSS in MB, sampled every 0.1 s) of one process; a failure stops the bench. The
    largest single-process RSS seen is left in PEAK_SINGLE_RSS_MB[0]."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = PEAK_SINGLE_RSS_MB[0] = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_pss_mb(proc.pid))
        PEAK_SINGLE_RSS_MB[0] = max(PEAK_SINGLE_RSS_MB[0], _largest_rss_mb(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:5])} failed:\n{err}")
    return out, peak


def _largest_rss_mb(pid: int) -> float:
    """The largest VmRSS (MB) among `pid` and its descendants."""
    return max((_status_kb(p, "status", "VmRSS") for p in _tree(pid)), default=0) / 1024
