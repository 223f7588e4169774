"""One step of `rlvr analyze`: every selected matrix of one checkpoint decomposed (W, and dW against the
base), its heavy-tail fits computed beside the decompositions, and the step's tables built.

Matrices are independent; `engines` says how they are spread (a thread pool, worker processes, or batched
same-shape stacks) and `matrix_work` what is done to each. Every weight read is checked for NaN/Inf first:
a non-finite weight of the step or of the base stops the analysis with a one-line error naming the tensor
and step (nothing of that step is written), unless `allow_nonfinite`, which records such tensors as not
analysed (`tensors.nonfinite`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import pyarrow as pa
import torch
from threadpoolctl import threadpool_limits

from ..cache import SCHEMAS
from ..errors import WorkerError
from ..math import geometry, heavytail, spectral
from ..readers.checkpoint import Checkpoint
from ..readers.naming import TensorRole, matrix_shape
from .engines import cpu_workers
from .matrix_work import ChunkTask, Outcome, Where, base_topk, check_finite, one_matrix, run_chunk, to_host
from .step_rows import StepRows

if TYPE_CHECKING:  # pragma: no cover
    from .analyze import AnalyzeConfig, Progress, _Job

CHUNK_MATRICES = 8
"""Matrices per task of the process engine (fewer when they are large: see `_chunks`)."""
CHUNK_ELEMENTS = 16_000_000
BATCH_ELEMENTS = 32_000_000
"""The batched engine stacks same-shape matrices up to this many elements (float64: 256 MB per stack)."""


def analyze_step(
    config: AnalyzeConfig,
    job: _Job,
    base: Checkpoint,
    device: torch.device,
    counts: tuple[int, int],
    progress: Progress | None,
    engine: tuple[str, Executor | None, Executor | None],
    base_vectors: dict[str, geometry.BaseVectors] | None = None,
) -> tuple[dict[str, pa.Table], int]:
    """Compute every matrix of one step; returns the step's tables and the updated progress count.
    `counts` is (matrices done so far, total); `engine` is (its name, the fit executor, the worker pool);
    `base_vectors`: the base step's spectra and top vectors per tensor, for the update's geometry (the
    batched engine computes only the measures' sparsity-free part: none)."""
    name, fitter, pool = engine
    done, total = counts
    rows = StepRows(config.run, job.step.step)
    pending: list[tuple[str, str, Future]] = []
    nonfinite: set[str] = set()
    if name == "processes":
        assert pool is not None
        outcomes = _in_processes(config, job, base, pool, base_vectors)
    elif name == "batched":
        outcomes = _batched(config, job, base, device)
    else:
        outcomes = _threaded(config, job, base, device, base_vectors)
    for outcome in outcomes:
        role = outcome.role
        if outcome.results is None:
            nonfinite.add(role.name)
        for target, result in outcome.results or []:
            rows.add(role, target, outcome.shape, result, job.ckpt.tensors[role.stored].dtype)
            if fitter is not None and not outcome.fits:  # in the fit process, beside the next decompositions
                future = fitter.submit(heavytail.fit_with_histogram, result.sv.numpy(), target == "dW")
                pending.append((role.name, target, future))
        if outcome.measures is not None:
            rows.add_measures(role, outcome.shape, outcome.measures, job.ckpt.tensors[role.stored].dtype)
        for target, fit, hist in outcome.fits:
            rows.add_fit(role.name, target, fit, hist)
        done += 1
        if progress is not None:
            progress(done, total, f"step {job.step.step} {role.name}")
    for tensor, target, future in pending:
        rows.add_fit(tensor, target, *future.result())
    tables = rows.tables()
    tables["tensors"] = _tensor_table(config.run, job, nonfinite)
    return tables, done


def _where(job: _Job, base: Checkpoint) -> Where:
    return Where(job.step.step, str(job.ckpt.path), None if job.is_base else str(base.path))


def _task(config: AnalyzeConfig, where: Where, roles: list[TensorRole], vectors: dict | None = None) -> ChunkTask:
    """How every engine treats the matrices of `roles` (the config's top-k, method, NaN policy, fits), with
    the base vectors of those roles (all of `vectors` when `roles` is empty: the thread engine's)."""
    method = "eigh" if config.triplet_method == "auto" else config.triplet_method
    if vectors is not None and roles:
        vectors = {r.name: vectors[r.name] for r in roles if r.name in vectors}
    return ChunkTask(where, roles, config.topk, method, config.allow_nonfinite, config.fits, config.geometry, vectors)


def _threaded(
    config: AnalyzeConfig, job: _Job, base: Checkpoint, device: torch.device, vectors: dict | None
) -> Iterator[Outcome]:
    """The thread engine: one matrix per task. On CPU each worker runs single-threaded BLAS; on CUDA three
    workers, each on its own stream, overlap reading, copying and computing."""
    threads = torch.get_num_threads()
    workers = cpu_workers(config.workers, device)
    task = _task(config, _where(job, base), [], vectors)
    step_base = None if job.is_base else base
    streams = threading.local()

    def work(role: TensorRole) -> Outcome:
        if device.type == "cuda":  # one CUDA stream per worker thread, so their kernels can overlap
            if not hasattr(streams, "stream"):
                streams.stream = torch.cuda.Stream(device)
            with torch.cuda.stream(streams.stream):
                return one_matrix(job.ckpt, step_base, role, task, device)
        return one_matrix(job.ckpt, step_base, role, task, device)

    if device.type == "cuda":  # initialise CUDA's linear-algebra libraries once, before the worker threads
        spectral.decompose(torch.eye(2, device=device), topk=1, method="eigh")
    per_worker = max(threads // workers, 1) if device.type == "cpu" else threads
    torch.set_num_threads(per_worker)
    try:
        with threadpool_limits(limits=per_worker), ThreadPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(work, job.roles)
    finally:
        torch.set_num_threads(threads)


def _in_processes(
    config: AnalyzeConfig, job: _Job, base: Checkpoint, pool: Executor, vectors: dict | None
) -> Iterator[Outcome]:
    """The process engine: chunks of matrices to the worker processes, at most two per worker in flight
    (so memory stays bounded however many matrices the step has), results in the roles' order."""
    where = _where(job, base)
    window = 2 * cpu_workers(config.workers, torch.device("cpu"))
    in_flight: deque[Future] = deque()
    try:
        for chunk in _chunks(job):
            in_flight.append(pool.submit(run_chunk, _task(config, where, chunk, vectors)))
            while len(in_flight) >= window:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()
    except BrokenProcessPool:
        raise WorkerError(
            f"step {job.step.step} ({job.ckpt.path})",
            "its worker processes to finish",
            "one of them died (killed, or out of memory); nothing of this step was written",
            "rerun (cached steps are skipped); with little memory pass --workers 1 or --engine threads",
        ) from None


def _chunks(job: _Job) -> Iterator[list[TensorRole]]:
    """Consecutive roles, up to CHUNK_MATRICES matrices or CHUNK_ELEMENTS elements (at least one) each."""
    chunk: list[TensorRole] = []
    size = 0
    for role in job.roles:
        n = _elements(job.ckpt, role)
        if chunk and (len(chunk) >= CHUNK_MATRICES or size + n > CHUNK_ELEMENTS):
            yield chunk
            chunk, size = [], 0
        chunk.append(role)
        size += n
    if chunk:
        yield chunk


def _batched(config: AnalyzeConfig, job: _Job, base: Checkpoint, device: torch.device) -> Iterator[Outcome]:
    """The batched engine: same-shape matrices stacked (up to BATCH_ELEMENTS) and decomposed together."""
    where = _where(job, base)
    buckets: dict[tuple[int, int], list[TensorRole]] = {}
    for role in job.roles:
        shape = matrix_shape(role, job.ckpt.tensors[role.stored].shape)
        bucket = buckets.setdefault(shape, [])
        bucket.append(role)
        if (len(bucket) + 1) * _elements(job.ckpt, role) > BATCH_ELEMENTS:
            yield from _one_batch(config, job, base, device, buckets.pop(shape), where)
    for bucket in buckets.values():
        yield from _one_batch(config, job, base, device, bucket, where)


def _one_batch(config, job, base, device, roles: list[TensorRole], where: Where) -> Iterator[Outcome]:
    good = []
    for role in roles:
        w, b = _load(job, base, role, device)
        if check_finite(w, b, role, where, config.allow_nonfinite):
            good.append((role, w, b))
        else:
            yield Outcome(role, tuple(w.shape), None)
    if not good:
        return
    w64 = torch.stack([w.to(torch.float64) for _, w, _ in good])
    w_results = spectral.decompose_batch(w64, base_topk(config.topk, config.geometry) if job.is_base else 0)
    dw_results = None
    if not job.is_base:
        dw_results = spectral.decompose_batch(w64.sub_(torch.stack([b for _, _, b in good])), config.topk)
    for i, (role, w, _) in enumerate(good):
        results = [("W", to_host(w_results[i]))] + ([("dW", to_host(dw_results[i]))] if dw_results else [])
        yield Outcome(role, tuple(w.shape), results)


def _elements(ckpt: Checkpoint, role: TensorRole) -> int:
    rows, cols = matrix_shape(role, ckpt.tensors[role.stored].shape)
    return rows * cols


def job_elements(job: _Job) -> int:
    """Weight elements a step's analysis decomposes (what `auto` weighs against starting worker processes)."""
    return sum(_elements(job.ckpt, role) for role in job.roles)


def _tensor_table(run: str, job: _Job, nonfinite: set[str]) -> pa.Table:
    """Every stored matrix of the step (one row per expert and projection of a fused expert tensor),
    labelled, whether it was analysed, and whether it held NaN/Inf."""
    analysed = {r.name for r in job.roles} - nonfinite
    tensors = [
        {
            "run": run,
            "step": job.step.step,
            "tensor": r.name,
            "layer": r.layer,
            "module": r.module,
            "kind": r.kind,
            "dtype": i.dtype,
            "shape": list(i.shape) if r.fused is None else list(matrix_shape(r, i.shape)),
            "analyzed": r.name in analysed,
            "nonfinite": r.name in nonfinite,
            "expert": r.expert,
        }
        for r, i in job.ckpt.roles()
    ]
    return pa.Table.from_pylist(tensors, schema=SCHEMAS["tensors"])


def _load(job: _Job, base: Checkpoint, role: TensorRole, device: torch.device):
    """(W, B) for one matrix on `device`, oriented out x in; B is None for the base step."""
    w = job.ckpt.read_matrix(role).to(device)
    return w, (None if job.is_base else base.read_matrix(role).to(device))
