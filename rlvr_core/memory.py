"""Keeping a long analysis's memory flat.

glibc's malloc keeps freed blocks in per-thread arenas and, after the first large free, raises its mmap
threshold to 32 MiB, so the many 1-35 MiB tensors of an analysis end up recycled through the heap and
fragment it: on a Qwen2.5-0.5B-shaped checkpoint peak RSS grew to 1.24 GB. Fixing the threshold at
1 MiB serves every tensor-sized block with its own mapping, returned to the OS when freed: peak RSS
0.47 GB at the same speed (bench/spectra.py, 2-core CPU box). A no-op where glibc is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3
_done = False


def return_large_blocks_to_os(threshold: int = 1 << 20) -> bool:
    """Serve allocations >= `threshold` bytes by mmap (freed straight back). True when applied."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
    return _done
