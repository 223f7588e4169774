"""Sharing a busy machine: no spin-waiting threads, and a lower CPU priority for background work.

OpenMP's default wait policy keeps a thread that finished its part of a parallel region spinning on its
core for a while, waiting for the next region. Alone on a machine that is a little faster; beside other
work it is ruinous: two torch threads on a loaded 2-core box ran 22 matmuls/s, against 885 with one thread
and 704 with `OMP_WAIT_POLICY=PASSIVE` (issue: a shared lab server under load). Measured on the demo: the
quick build took 6.7x its quiet time beside one busy loop per core, 1.67x with the passive policy.

`no_spin_wait()` sets `WAIT_POLICY` (GNU OpenMP, which torch's CPU wheels use, and Intel OpenMP's
equivalent) for this process and every process it starts, unless the user set them. It must run before
torch (or numpy's BLAS) loads: `rlvr`'s entry point calls it first, so the worker, its jobs, the fit and
engine processes (spawned: they inherit the environment) and the demo all run with it. The numbers do not
change: a wait policy decides how an idle thread waits, not how work is split (the determinism test
rebuilds the demo under load with it and compares every number).

`lower_priority(n)` makes this process (and what it starts later) `n` steps nicer, `cap_threads(n)` caps
the thread counts of what it starts: `rlvr worker --nice N --threads T`, which `rlvr serve` passes from
`[server] worker_nice` (default 10) and `worker_threads`, so the dashboard stays quick while jobs compute.

May import: nothing of the tool.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""The thread counts torch's OpenMP, MKL and numpy's OpenBLAS read when they load."""
WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
"""Idle OpenMP threads sleep instead of spinning (GNU OpenMP; Intel OpenMP's block time 0 is the same)."""


def no_spin_wait(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each of `WAIT_POLICY` the user has not set (in `environ`, default `os.environ`); returns the
    settings in effect. Effective for this process only when torch has not loaded yet; always for the
    processes it starts."""
    env = os.environ if environ is None else environ
    for name, value in WAIT_POLICY.items():
        env.setdefault(name, value)
    return {name: env[name] for name in WAIT_POLICY}


def cap_threads(threads: int, environ: MutableMapping[str, str] | None = None) -> None:
    """Cap the threads of the processes started from here on (`THREAD_VARIABLES`; a command's own
    `--threads` still sets torch's count inside it)."""
    env = os.environ if environ is None else environ
    for name in THREAD_VARIABLES:
        env[name] = str(threads)


def lower_priority(steps: int) -> int:
    """Raise this process's nice value by `steps` (0: unchanged; the kernel caps it at 19); returns the nice
    value now in effect."""
    if steps < 0:
        raise ValueError(f"a priority can only be lowered here: got {steps} steps")
    return os.nice(steps)
