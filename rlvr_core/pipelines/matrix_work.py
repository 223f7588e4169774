"""The work `rlvr analyze` does on one matrix, shared by its three engines (see `analyze_step`): read W
(and the base's B), check both are finite, decompose W and dW = W - B (`math.spectral`), and, in the
process engine, fit both spectra (`math.heavytail`) in the same worker.

`run_chunk` is the process engine's task: a worker process opens the step's and the base's checkpoints
itself (headers parsed once per process and checkpoint), reads only its own matrices, and returns numpy
arrays, so nothing but small results crosses the process boundary. A worker holds one matrix at a time.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import CheckpointFormatError
from ..math import geometry, heavytail, spectral
from ..readers.checkpoint import Checkpoint
from ..readers.formats import open_checkpoint
from ..readers.naming import TensorRole
from ..system.libc import die_with_parent, return_large_blocks_to_os, trim_heap


@dataclass(frozen=True)
class Where:
    """Which checkpoints a matrix comes from (for reading, and for error messages)."""

    step: int
    """The step being analysed."""
    step_path: str
    """Its checkpoint folder."""
    base_path: str | None
    """The base model's folder; None when the step is the base itself."""


@dataclass(frozen=True)
class ChunkTask:
    """Matrices of one step and how to treat them (fields of `AnalyzeConfig`): the process engine's task,
    and what the thread engine's `one_matrix` calls read their settings from."""

    where: Where
    roles: list[TensorRole]
    topk: int
    """Top triplets of dW (and of W for the base)."""
    method: str
    """`eigh` or `lowrank` (`spectral.decompose`)."""
    allow_nonfinite: bool
    fits: bool
    """Fit each spectrum in the worker, right after its decomposition."""
    measure: bool = True
    """Measure the update's geometry (`AnalyzeConfig.geometry`)."""
    base_vectors: dict[str, geometry.BaseVectors] | None = None
    """tensor -> W_base's spectrum and top vectors (the base step's results), for the update's geometry
    (`geometry.measure`); None: only the measures that need no base vectors."""


@dataclass
class Outcome:
    """One matrix's results: per target (`W`, `dW`) its spectrum, and its fit when asked for."""

    role: TensorRole
    shape: tuple[int, ...]
    results: list[tuple[str, spectral.MatrixSpectrum]] | None
    """None when the matrix held NaN/Inf and `allow_nonfinite` recorded it as not analysed."""
    fits: list[tuple[str, heavytail.PowerLawFit, tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(
        default_factory=list
    )
    """Its spectra's fits, when computed beside the decomposition (process engine)."""
    measures: geometry.UpdateGeometry | None = None
    """The update's measures against the base (`math.geometry`), for a step with a base."""


def check_finite(w: torch.Tensor, b: torch.Tensor | None, role: TensorRole, where: Where, allow: bool) -> bool:
    """True when W (and B) hold no NaN or Inf; else False when allowed, else a one-line error."""
    for label, tensor in (("the step", w), ("the base", b)):
        if tensor is not None and not _all_finite(tensor):
            if allow:
                return False
            raise CheckpointFormatError(
                f"tensor '{role.name}' at step {where.step}",
                "finite values",
                f"NaN or Inf in {label}'s weight ({where.step_path if label == 'the step' else 'the base model'})",
                "the checkpoint is broken (check the training run), or pass --allow-nonfinite to record such "
                "tensors as not analysed",
            )
    return True


def _all_finite(t: torch.Tensor) -> bool:
    """No NaN or Inf in `t`: its float64 sum is finite (a float64 sum of finite fp32/fp16/bf16 values cannot
    overflow, and NaN or Inf carries through it); 5x cheaper than `isfinite(t).all()` on bf16. A float64
    tensor (which could overflow) is checked elementwise."""
    if t.dtype == torch.float64:
        return bool(torch.isfinite(t).all())
    return bool(torch.isfinite(t.sum(dtype=torch.float64)))


def decompose_pair(
    w: torch.Tensor,
    b: torch.Tensor | None,
    topk_w: int,
    topk: int,
    method: str,
    base: geometry.BaseVectors | None,
    measure: bool = True,
) -> tuple[list[tuple[str, spectral.MatrixSpectrum]], geometry.UpdateGeometry | None]:
    """W's spectrum (with `topk_w` triplets) and, with a base, dW's (with `topk`) and the update's geometry,
    in float64 block by block (`spectral.decompose`): dW = W - B from the exact stored values, with no whole
    float64 copy; the geometry's counts and projections are taken from dW's blocks in the same pass. With
    `base` vectors, W's top `geometry.KS[-1]` vectors are found too (for the rotation; not stored): the
    Gram side from W's eigen-decomposition, the other side from W's blocks in dW's pass. With `measure`
    False: the spectra alone."""
    if b is None or not measure:
        results = [("W", spectral.decompose(w, topk_w, method))]
        if b is not None:
            results.append(("dW", spectral.decompose(w, topk, method, minus=b)))
        return results, None
    right = w.shape[0] >= w.shape[1]
    shape = (int(w.shape[0]), int(w.shape[1]))
    sample = geometry.ChangedSample(shape, right)
    if base is None:
        w_result, observer = spectral.decompose(w, topk_w, method), geometry.Projections(None, right, sample=sample)
    else:  # W's top vectors: the Gram side here, the other side formed in dW's pass
        w_result, side, _ = spectral.spectrum_and_side(w, geometry.KS[-1])
        observer = geometry.Projections(base, right, step_side=side, sample=sample)
    dw_result = spectral.decompose(w, topk, method, minus=b, observe=observer)
    vectors = observer.step_vectors()
    step_w = (w_result.sv.cpu().numpy(), *vectors) if vectors is not None else None
    measured = geometry.measure(observer, dw_result.stats, dw_result.sv.cpu().numpy(), shape, step_w)
    return [("W", w_result), ("dW", dw_result)], measured


def base_topk(topk: int, measure: bool) -> int:
    """The triplets of W the base step keeps: `topk`, and with the update's geometry at least the
    `geometry.KS[-1]` principal directions every step's update is measured against."""
    return max(topk, geometry.KS[-1]) if measure else topk


def to_host(result: spectral.MatrixSpectrum) -> spectral.MatrixSpectrum:
    """A result in CPU memory (float32 vectors, as stored), so no GPU memory outlives its tensor."""
    t = result.triplets
    if t is not None:
        t = spectral.Triplets(t.sigma.cpu(), t.u.to(torch.float32).cpu(), t.v.to(torch.float32).cpu())
    return spectral.MatrixSpectrum(result.sv.cpu(), result.stats, t)


def one_matrix(step: Checkpoint, base: Checkpoint | None, role: TensorRole, task: ChunkTask, device="cpu") -> Outcome:
    """Read one matrix of the step (and of the base), check both are finite, decompose W and dW (the base
    step keeps W's top-k triplets: its principal directions); results in CPU memory. `task` (its roles
    aside) says where from and how."""
    w = step.read_matrix(role).to(device)
    b = base.read_matrix(role).to(device) if base is not None else None
    if not check_finite(w, b, role, task.where, task.allow_nonfinite):
        return Outcome(role, tuple(w.shape), None)
    topk_w = 0 if b is not None else base_topk(task.topk, task.measure)
    base_vectors = None if task.base_vectors is None else task.base_vectors.get(role.name)
    results, measured = decompose_pair(w, b, topk_w, task.topk, task.method, base_vectors, task.measure)
    return Outcome(role, tuple(w.shape), [(t, to_host(r)) for t, r in results], measures=measured)


@functools.cache
def _open(path: str) -> Checkpoint:
    """A worker's checkpoint, opened (headers parsed) once per process."""
    return open_checkpoint(path)


def run_chunk(task: ChunkTask) -> list[Outcome]:
    """In a worker process: every matrix of `task`, decomposed and (with `fits`) fitted."""
    where = task.where
    step = _open(where.step_path)
    base = _open(where.base_path) if where.base_path is not None else None
    out = []
    for role in task.roles:
        outcome = one_matrix(step, base, role, task)
        if task.fits:
            outcome.fits = [
                (t, *heavytail.fit_with_histogram(r.sv.numpy(), t == "dW")) for t, r in outcome.results or []
            ]
        out.append(outcome)
    trim_heap()  # the chunk's freed copies back to the system: memory stays flat from chunk to chunk
    return out


def start_worker(parent: int) -> None:
    """In a worker process: die with the analysis, and single-threaded BLAS (one process per core).

    Memory: blocks under 32 MiB come from the heap, which `run_chunk` trims after each chunk. Measured on
    bench/moe.py's checkpoint (2 workers): glibc's default heap kept 510-590 MB of freed float64 copies
    per worker; serving every block over 1 MiB by mmap (as the main process does) kept 290 MB but cost
    28% more time in page faults (a fresh mapping per copy); heap + trim per chunk: 400-430 MB at full
    speed."""
    die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    return_large_blocks_to_os(32 << 20)
    torch.set_num_threads(1)
    heavytail.single_threaded()
