"""Reproducible CPU numbers for the demos: what can make two runs with the same seed and thread count differ,
and the settings that pin it, applied before torch is imported.

What varies, and why (float sums are not associative, so any change in the order of a reduction changes
the last bits, and the demo's discrete steps — sampling, the warm-up's stopping check — turn last bits
into different runs):

- MKL's thread count under load: with `MKL_DYNAMIC` true (its default) MKL may run a product on fewer
  threads than asked when the machine is busy, which splits the sums differently. Pinned off
  (`MKL_DYNAMIC=FALSE`, and `OMP_DYNAMIC=FALSE` for OpenMP).
- The CPU's instruction set: torch's own kernels (`ATEN_CPU_CAPABILITY`), MKL (`MKL_CBWR`, its
  "conditional numerical reproducibility") and oneDNN (`ONEDNN_MAX_CPU_ISA`) choose code paths by CPU
  (AVX-512 or AVX2, Intel or AMD), and each path sums in its own order. All three are pinned to AVX2, which
  every x86-64 CPU of the last ten years has, so machines of different kinds can take the same paths.
- The thread count itself (`--threads`): different splits, different sums. The demos fix it (default 2).

Each variable is only set when the user has not set it. `pin_cpu_kernels()` must run before torch is
imported (the variables are read when the libraries load); it says so when torch is already loaded.
"""

from __future__ import annotations

import os
import sys

PINS = {
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
    "MKL_CBWR": "AVX2,STRICT",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
"""The environment that makes a CPU run reproducible (see the module docstring)."""


def pin_cpu_kernels() -> dict[str, str]:
    """Set each of `PINS` the user has not set; returns the settings in effect. Raises RuntimeError when
    torch was imported first (the pins would silently not apply)."""
    if "torch" in sys.modules:
        raise RuntimeError("pin_cpu_kernels() must run before torch is imported")
    for name, value in PINS.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in PINS}
