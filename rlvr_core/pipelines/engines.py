"""How `rlvr analyze` spreads its matrices over the machine: the engine choice and its worker processes.

Engines (`AnalyzeConfig.engine`, `rlvr analyze --engine`):
- `threads`: a thread pool in this process, one matrix per task (on CUDA three workers, each on its own
  stream); fits in one separate fit process. The engine of every release before this one.
- `processes` (CPU): a pool of worker processes, one per core, each taking a chunk of matrices, reading
  them itself and fitting their spectra right after decomposing them. Threads cannot use a second core
  here: SciPy's BLAS/LAPACK wrappers that `spectral` uses on CPU (`dsyrk`, `dsytrd`, `dsterf`) hold the
  GIL (two threads decomposing 768 x 2048 matrices: 58 ms per matrix against 65 ms in one thread), and one
  fit process cannot keep up with tens of thousands of expert spectra.
- `batched` (meant for CUDA): same-shape matrices (a layer's experts) stacked and decomposed by one
  batched Gram product and one batched eigen-decomposition (`spectral.decompose_batch`); fits in the fit
  process. It runs on CPU too (the tests check it there), where it is slower than `processes`.
- `auto`: `processes` on CPU when the step is large enough to pay for starting the workers (at least
  `PROCESS_MIN_ELEMENTS` weight elements and more matrices than workers) and the caller's main script can
  be re-imported (spawn); else `threads`. On CUDA `threads`: the batched engine has not been measured on
  a GPU yet.

Worker and fit processes are started with `spawn` (this process has threads), die with the analysis
(PR_SET_PDEATHSIG) and run single-threaded BLAS.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager

import torch

from ..errors import UsageError
from ..math import heavytail
from ..system.libc import die_with_parent
from .matrix_work import start_worker

ENGINES = ("auto", "threads", "processes", "batched")
PROCESS_MIN_ELEMENTS = 100_000_000
"""`auto` starts worker processes for a step of at least this many weight elements (~a 0.1B-parameter
model's linear layers, about 10 s of decomposition on one core): below it, starting them costs more."""


def resolve_engine(engine: str, device: torch.device, elements: int, matrices: int, workers: int) -> str:
    """The engine to run: `engine` unless `auto` (see the module docstring)."""
    if engine not in ENGINES:
        raise UsageError("--engine", f"one of {', '.join(ENGINES)}", repr(engine), "pass for example --engine auto")
    if engine == "processes" and device.type != "cpu":
        raise UsageError("--engine", "processes on CPU only", f"device {device}", "use --engine batched or threads")
    if engine != "auto":
        return engine
    if device.type == "cpu" and workers > 1 and matrices > workers and elements >= PROCESS_MIN_ELEMENTS:
        return "processes" if _can_spawn() else "threads"
    return "threads"


def cpu_workers(requested: int | None, device: torch.device) -> int:
    """Matrices computed at once: `requested`, else one per CPU thread on CPU, three on CUDA."""
    return requested or (3 if device.type == "cuda" else max(torch.get_num_threads(), 1))


@contextmanager
def matrix_processes(enabled: bool, workers: int) -> Iterator[Executor | None]:
    """The process engine's worker pool (None when not enabled)."""
    if not enabled:
        yield None
        return
    with _spawned(workers, start_worker) as pool:
        yield pool


@contextmanager
def fit_process(enabled: bool) -> Iterator[Executor | None]:
    """An executor for the heavy-tail fits of the thread and batched engines: one separate process, so
    their pure-Python optimiser loops do not hold this process's GIL against the workers (in a thread they
    took 24-32% of the analysis time, for ~8% of its CPU work), and they never hold the GPU. Where spawn
    cannot re-import the caller's main script (code read from stdin), the fits run in one thread."""
    if not enabled:
        yield None
    elif not _can_spawn():
        with ThreadPoolExecutor(max_workers=1) as threads:
            yield threads
    else:
        with _spawned(1, _start_fit_process) as pool:
            yield pool


@contextmanager
def _spawned(workers: int, initializer: Callable[[int], None]) -> Iterator[Executor]:
    """A pool of `workers` spawned processes, each running `initializer(this process's pid)` first; on the
    way out, queued tasks are cancelled and the workers joined."""
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=(os.getpid(),),
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _can_spawn() -> bool:
    """Spawn re-imports the caller's main script: impossible when it was read from stdin."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _start_fit_process(parent: int) -> None:
    """In the fit process: die with the analysis (however it dies: no orphan fitting for nobody), and run
    single-threaded at a low priority. The death signal is armed only once the process has imported
    what it needs (seconds, with spawn): if the analysis died before that, exit now."""
    die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    heavytail.single_threaded()
