"""What the benches share: one `rlvr` process run to its end while the memory of its process tree is sampled."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path


def tree_pss_mb(pid: int) -> float:
    """Sum of PSS (MB) of `pid` and its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)[1])  # type: ignore[index]
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, TypeError):
            continue
    return total / 1024


def run_sampled(argv: list[str]) -> tuple[str, float]:
    """(stdout, peak tree PSS in MB, sampled every 0.1 s) of one process; a failure stops the bench."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_pss_mb(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:5])} failed:\n{err}")
    return out, peak
