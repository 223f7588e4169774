"""One step of `rlvr analyze`: every selected tensor of one checkpoint decomposed (W, and dW against the
base), its heavy-tail fits handed to the fit process, and the step's tables built.

Tensors are independent, so they run in a thread pool (on CPU one single-threaded worker per core; on CUDA
three workers, each on its own stream). Every weight read is checked for NaN/Inf first: a non-finite weight
of the step or of the base stops the analysis with a one-line error naming the tensor and step (nothing of
that step is written), unless `allow_nonfinite`, which records such tensors as not analysed
(`tensors.nonfinite`).
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
import torch
from threadpoolctl import threadpool_limits

from ..cache import SCHEMAS
from ..errors import CheckpointFormatError
from ..math import heavytail, spectral
from ..readers.checkpoint import Checkpoint
from ..readers.naming import TensorRole
from .step_rows import StepRows

if TYPE_CHECKING:  # pragma: no cover
    from .analyze import AnalyzeConfig, Progress, _Job


def analyze_step(
    config: AnalyzeConfig,
    job: _Job,
    base: Checkpoint,
    device: torch.device,
    done: int,
    total: int,
    progress: Progress | None,
    fitter: Executor | None,
) -> tuple[dict[str, pa.Table], int]:
    """Compute every tensor of one step; returns the step's tables and the updated progress count.

    Tensors are independent, so they run in a thread pool. On CPU each worker thread runs its BLAS and
    LAPACK calls single-threaded, one worker per core (eigen-solvers scale poorly across threads: 1.7x
    faster on 10 matrices in a micro-benchmark, about 15% on a whole 0.5B checkpoint on 2 cores). On
    CUDA three workers, each on its own stream, overlap reading, copying and computing.
    """
    method = config.triplet_method
    if method == "auto":
        method = "eigh"
    threads = torch.get_num_threads()
    workers = config.workers or (3 if device.type == "cuda" else max(threads, 1))
    rows = StepRows(config.run, job.step.step)
    fits: list = []
    nonfinite: set[str] = set()

    streams = threading.local()

    def work(role: TensorRole) -> tuple[TensorRole, tuple[int, int], list | None]:
        if device.type == "cuda":  # one CUDA stream per worker thread, so their kernels can overlap
            if not hasattr(streams, "stream"):
                streams.stream = torch.cuda.Stream(device)
            with torch.cuda.stream(streams.stream):
                return _work(role)
        return _work(role)

    def _work(role: TensorRole) -> tuple[TensorRole, tuple[int, int], list | None]:
        w, b = _load(job, base, role, device)
        shape = tuple(w.shape)
        if not _finite(w, b, job, role, config.allow_nonfinite):
            return role, shape, None
        w64 = w.to(torch.float64)
        del w
        # the base keeps W's top-k triplets too: its principal directions, for the alignment analysis
        results = [("W", spectral.decompose(w64, config.topk if job.is_base else 0, method))]
        if b is not None:
            dw = w64.sub_(b)  # in place (W is done with): the exact stored values, float64 throughout
            del b
            results.append(("dW", spectral.decompose(dw, config.topk, method)))
        return role, shape, [(target, _to_host(r)) for target, r in results]

    if device.type == "cuda":  # initialise CUDA's linear-algebra libraries once, before the worker threads
        spectral.decompose(torch.eye(2, device=device), topk=1, method="eigh")
    per_worker = max(threads // workers, 1) if device.type == "cpu" else threads
    torch.set_num_threads(per_worker)
    try:
        with threadpool_limits(limits=per_worker), ThreadPoolExecutor(max_workers=workers) as pool:
            for role, shape, results in pool.map(work, job.roles):
                if results is None:
                    nonfinite.add(role.name)
                for target, result in results or []:
                    rows.add(role, target, shape, result, job.ckpt.tensors[role.stored].dtype)
                    if fitter is not None:  # in the fit process, while the workers decompose the next tensors
                        fit = fitter.submit(heavytail.fit_with_histogram, result.sv.numpy(), target == "dW")
                        fits.append((role.name, target, fit))
                done += 1
                if progress is not None:
                    progress(done, total, f"step {job.step.step} {role.name}")
    finally:
        torch.set_num_threads(threads)
    for tensor, target, future in fits:
        rows.add_fit(tensor, target, *future.result())
    tables = rows.tables()
    tables["tensors"] = _tensor_table(config.run, job, nonfinite)
    return tables, done


def _finite(w: torch.Tensor, b: torch.Tensor | None, job: _Job, role: TensorRole, allow: bool) -> bool:
    """True when W (and the base's B) hold no NaN or Inf; else False when allowed, else a one-line error."""
    for where, tensor in (("the step", w), ("the base", b)):
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            if allow:
                return False
            raise CheckpointFormatError(
                f"tensor '{role.name}' at step {job.step.step}",
                "finite values",
                f"NaN or Inf in {where}'s weight ({job.ckpt.path if where == 'the step' else 'the base model'})",
                "the checkpoint is broken (check the training run), or pass --allow-nonfinite to record such "
                "tensors as not analysed",
            )
    return True


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
            "shape": list(i.shape) if r.fused is None else _fused_shape(r, i.shape),
            "analyzed": r.name in analysed,
            "nonfinite": r.name in nonfinite,
            "expert": r.expert,
        }
        for r, i in job.ckpt.roles()
    ]
    return pa.Table.from_pylist(tensors, schema=SCHEMAS["tensors"])


def _fused_shape(role: TensorRole, stored: tuple[int, ...]) -> list[int]:
    """out x in of one expert's matrix inside a fused tensor."""
    assert role.fused is not None
    out, inn = (stored[2], stored[1]) if role.transposed else (stored[1], stored[2])
    start, stop, step = role.fused.rows
    return [len(range(start, min(stop, out), step)), inn]


def _load(job: _Job, base: Checkpoint, role: TensorRole, device: torch.device):
    """(W, B) for one tensor on `device`, oriented out x in; B is None for the base step."""

    def fetch(ckpt: Checkpoint) -> torch.Tensor:
        return ckpt.read_matrix(role).to(device)

    return fetch(job.ckpt), (None if job.is_base else fetch(base))


def _to_host(result: spectral.MatrixSpectrum) -> spectral.MatrixSpectrum:
    """Move a result to CPU memory (float32 vectors, as stored) so no GPU memory outlives its tensor."""
    t = result.triplets
    if t is not None:
        t = spectral.Triplets(t.sigma.cpu(), t.u.to(torch.float32).cpu(), t.v.to(torch.float32).cpu())
    return spectral.MatrixSpectrum(result.sv.cpu(), result.stats, t)
