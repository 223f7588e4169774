"""The analysis job of the GPU worker: checkpoints in, per-layer spectra in the cache out.

For every selected 2-D tensor of every step checkpoint, with B the base model's tensor and W the step's:
- target `W`: the spectrum and stats of W,
- target `dW`: the spectrum and stats of dW = W - B (formed in float64 from the stored values, never
  through fp16) and its top-k singular triplets.
The base model itself is analysed as step 0 (target `W` only, with W's top-k triplets: its principal
directions) unless the run has its own step 0 or `include_base` is off, so base and step spectra can be
compared. Each spectrum's heavy-tail fit (`heavytail`) runs in a separate CPU process while the workers
decompose the next tensors; after the steps, the run-level alignment and rank-1 dynamics
(`run_alignment`) are recomputed from every cached step of the run.

This is the only module that places tensors on a GPU. Work is validated before it starts (all headers,
names and shapes of every chosen step against the base), so bad input fails before anything is written.
Each step is published atomically (see `Cache.write_step`); a step whose checkpoint, base and settings
are unchanged since it was cached is skipped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import torch

from .. import __version__
from ..cache import SCHEMAS, Cache, check_run_name
from ..cache.queue import current_user
from ..errors import CheckpointFormatError, UsageError
from ..math import geometry
from ..readers.checkpoint import FLOAT_DTYPES, Checkpoint, check_none_missing, check_same_model, check_same_tensors
from ..readers.formats import open_checkpoint
from ..readers.hub import revision_of
from ..readers.layout import StepCheckpoint, locate_step
from ..readers.naming import EMBEDDING, LINEAR, LM_HEAD, TensorRole
from ..system.devices import resolve_device
from ..system.libc import return_large_blocks_to_os
from . import precision, run_alignment
from .analyze_step import analyze_step, job_elements
from .engines import cpu_workers, fit_process, matrix_processes, resolve_engine

AUTO_CLAIMS_ELEMENTS = 1_000_000_000
"""`rlvr analyze` rebuilds the run's claims board itself when a step has at most this many weight elements
(its chance levels simulate Gaussian matrices of the model's shapes: seconds for a 0.5B model, minutes for a
7B one, too long to add to every watched step); above, `rlvr claims RUN` (or the Claims page) builds it."""
Progress = Callable[[int, int, str], None]
"""Called after each tensor as progress(done, total, message)."""


@dataclass(kw_only=True)
class AnalyzeConfig:
    """What `analyze_run` does. Fields mirror the flags of `rlvr analyze`."""

    base: Path
    """The base model folder (the checkpoint every dW is measured from)."""
    checkpoints: list[StepCheckpoint]
    """The step checkpoints to analyse (from `layout.discover_steps` or `layout.parse_explicit`)."""
    run: str
    """The run's name in the cache (a safe folder name)."""
    cache: Path = Path("cache")
    """The cache folder."""
    modules: str | None = None
    """Regex searched in tensor names; only matching tensors are analysed. None: all linear layers."""
    topk: int = 8
    """How many top singular triplets of dW to store per tensor."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`."""
    include_embeddings: bool = False
    """Also analyse embeddings and lm_head (2-D tensors outside the blocks)."""
    include_base: bool = True
    """Analyse the base model as step 0 (target W only) when the run has no step 0."""
    force: bool = False
    """Recompute steps even when the cache already holds them unchanged."""
    triplet_method: str = "auto"
    """`eigh` (exact, from the Gram matrix), `lowrank` (randomized, checked, falls back to eigh), or
    `auto` (= `eigh`: on rank-1-plus-noise updates the checked low-rank route fell back every time)."""
    alignment: bool = True
    """Recompute the run-level alignment and rank-1 dynamics files from all cached steps of the run."""
    geometry: bool = True
    """Measure each update's geometry against the base (`update_geometry`: sparsity, numerical rank,
    principal-subspace rotation, spectral drift, off-principal and value shares); the base step then keeps
    its top 32 singular vectors."""
    fits: bool = True
    """Fit a power law to each ESD (W and dW) and store log-binned ESD histograms (`fits`, `esd_hist`)."""
    allow_nonfinite: bool = False
    """Record tensors holding NaN/Inf (in the step or the base) as not analysed instead of stopping."""
    engine: str = "auto"
    """How matrices are spread over the machine: `threads`, `processes` (CPU worker processes, fits in
    them), `batched` (same-shape stacks, for GPUs) or `auto`; see `pipelines.engines`."""
    owner: str | None = None
    """Who writes the run (None: this process's user); the run's owner is recorded (`cache.owners`)."""
    sources: tuple[str, ...] = ()
    """Where the checkpoints come from, recorded with the run: run folders or `--pair` models. Empty: each
    checkpoint's run folder (its known layout's, else its parent folder)."""
    shared: bool = False
    """Running as a job of a shared server: another user's run is refused even with `force`."""
    workers: int | None = None
    """Tensors computed at once. None: one per CPU thread on CPU (each single-threaded), three on CUDA
    (each on its own CUDA stream, so reading, copying and computing overlap)."""


@dataclass
class AnalyzeSummary:
    """What one `analyze_run` call did."""

    run: str
    """The run's name in the cache."""
    analyzed: list[int] = field(default_factory=list)
    """Steps analysed now."""
    skipped: list[int] = field(default_factory=list)
    """Steps skipped: cached, and their checkpoint, base and settings unchanged."""
    tensors: int = 0
    """Tensors analysed now (over all steps)."""
    seconds: float = 0.0
    """Wall time of the whole call."""
    seconds_per_step: dict[int, float] = field(default_factory=dict)
    """Wall time of each analysed step."""
    device: str = "cpu"
    """The device the decompositions ran on."""
    engine: str = "threads"
    """The engine that ran them (`pipelines.engines`)."""
    alignment_tensors: int = 0
    """Tensors covered by the run-level alignment files (0 when they were not recomputed)."""
    alignment_steps: int = 0
    """Steps covered by the run-level alignment files."""
    warnings: list[str] = field(default_factory=list)
    """What the user should know about the results (a 16-bit export that zeroed much of dW: `precision`)."""


@dataclass(frozen=True)
class _Job:
    step: StepCheckpoint
    ckpt: Checkpoint
    roles: list[TensorRole]
    is_base: bool


def _sources(checkpoints: list[StepCheckpoint]) -> tuple[str, ...]:
    """The run folder of each checkpoint (its layout's; a folder of unknown layout: its parent)."""
    found = set()
    for checkpoint in checkpoints:
        located = locate_step(checkpoint.path)
        found.add(str(located[1] if located else Path(checkpoint.path).resolve().parent))
    return tuple(sorted(found))


def analyze_run(config: AnalyzeConfig, progress: Progress | None = None) -> AnalyzeSummary:
    """Analyse every checkpoint of `config` into the cache; see the module docstring."""
    if config.topk < 0:
        raise UsageError("--topk", "a number >= 0", str(config.topk), "pass for example --topk 8")
    device = resolve_device(config.device)
    return_large_blocks_to_os()
    cache = Cache(config.cache)
    base, jobs = _plan(config)  # the checkpoints first: a folder that is no checkpoint says what it is
    check_run_name(config.run)
    settings = json.dumps(
        {
            "topk": config.topk,
            "modules": config.modules,
            "fits": config.fits,
            "include_embeddings": config.include_embeddings,
            # steps cached before the update's geometry (or without it) are redone when it is asked for
            **({"measures": geometry.MEASURES_VERSION} if config.geometry else {}),
            # fits of dW with the scale-free eigenvalue floor: steps cached with the older absolute one are redone
            **({"dw_floor": "relative"} if config.fits else {}),
            **({"allow_nonfinite": True} if config.allow_nonfinite else {}),
        },
        sort_keys=True,
    )
    owner = config.owner or current_user()
    cache.claim_run(config.run, owner, config.sources or _sources(config.checkpoints), config.force, config.shared)
    base_fp = base.fingerprint
    todo = [j for j in jobs if config.force or not _is_cached(cache, config.run, j, base_fp, settings)]
    summary = AnalyzeSummary(config.run, skipped=[j.step.step for j in jobs if j not in todo], device=str(device))
    total = sum(len(j.roles) for j in todo)
    done = 0
    start = time.perf_counter()
    workers = cpu_workers(config.workers, device)
    largest = max(todo, key=job_elements, default=None)
    size = (job_elements(largest), len(largest.roles)) if largest else (0, 0)
    engine = resolve_engine(config.engine, device, *size, workers)
    summary.engine = engine
    fits_apart = config.fits and bool(todo) and engine != "processes"  # process workers fit their own spectra
    vectors: dict[str, geometry.BaseVectors] | None = None  # the base's principal directions, read once
    with fit_process(fits_apart) as fitter, matrix_processes(engine == "processes" and bool(todo), workers) as pool:
        for job in todo:
            t0 = time.perf_counter()
            if job.is_base and not config.force and _reuse_base(cache, config.run, base_fp, settings):
                summary.analyzed.append(0)  # the same base, with the same settings, analysed for another run
                summary.seconds_per_step[0] = time.perf_counter() - t0
                done += len(job.roles)
                continue
            counts = (done, total)
            if not job.is_base and config.geometry and vectors is None:  # once: after the base step is cached
                vectors = _base_vectors(cache, config.run)
            step_vectors = None if job.is_base else vectors
            tables, done = analyze_step(
                config, job, base, device, counts, progress, (engine, fitter, pool), step_vectors
            )
            seconds = time.perf_counter() - t0
            tables["checkpoints"] = _checkpoint_table(config, job, base_fp, settings, device, seconds, tables["layers"])
            summary.warnings += precision.warnings(job.step.step, tables["checkpoints"].to_pylist()[0])
            cache.write_step(config.run, job.step.step, tables)
            summary.analyzed.append(job.step.step)
            summary.seconds_per_step[job.step.step] = seconds
            summary.tensors += len(job.roles)
    if config.alignment and (summary.analyzed or not run_alignment.is_current(cache, config.run)):
        summary.alignment_tensors, summary.alignment_steps = run_alignment.update_run(cache, config.run)
    if summary.analyzed:
        from .correlate import correlate_run  # scipy.stats: imported when needed, not by the fit process

        correlate_run(cache, config.run)  # the metrics (and u1's final step) changed
        if config.geometry and size[0] <= AUTO_CLAIMS_ELEMENTS:
            from .claims import claims_run

            claims_run(cache, config.run)  # the claims board at the run's last step
    summary.seconds = time.perf_counter() - start
    return summary


def _base_vectors(cache: Cache, run: str) -> dict[str, geometry.BaseVectors] | None:
    """The base step's (step 0's) whole spectrum and top vectors of each W, as cached: what the update's
    geometry is measured against. None when the run has no base step cached (`--no-base`)."""
    spectra = cache.step_spectra(run, 0, "W")
    top = cache.step_triplets(run, 0, "W") or {}
    out = {t: geometry.BaseVectors(spectra[t], u, v) for t, (_, u, v) in top.items() if t in spectra}
    return out or None


def _plan(config: AnalyzeConfig) -> tuple[Checkpoint, list[_Job]]:
    """Open and validate the base and every checkpoint, paired with the base, before any work starts."""
    if not config.checkpoints:
        raise UsageError("analyze", "at least one step checkpoint", "none", "pass RUN_DIR or --checkpoint STEP=PATH")
    base = open_checkpoint(config.base)
    pattern = _compile(config.modules)
    steps = list(config.checkpoints)
    jobs: list[_Job] = []
    if config.include_base and all(s.step != 0 for s in steps):
        roles = _select(base, pattern, config.include_embeddings)
        jobs.append(_Job(StepCheckpoint(0, base.path, "base"), base, roles, True))
    for step in steps:
        ckpt = open_checkpoint(step.path)
        roles = _select(ckpt, pattern, config.include_embeddings)
        _match(base, ckpt, roles, _select(base, pattern, config.include_embeddings))
        jobs.append(_Job(step, ckpt, roles, False))
    return base, jobs


def _compile(modules: str | None) -> re.Pattern[str] | None:
    if modules is None:
        return None
    try:
        return re.compile(modules)
    except re.error as exc:
        raise UsageError(
            "--modules", "a Python regular expression", f"{modules!r} ({exc})", "fix the pattern, e.g. 'q_proj|v_proj'"
        ) from None


def _select(ckpt: Checkpoint, pattern: re.Pattern[str] | None, embeddings: bool) -> list[TensorRole]:
    """The matrices to analyse: linear weights (and embeddings on request) whose name (or stored name, for
    a fused expert tensor) matches `pattern`."""
    kinds = {LINEAR, EMBEDDING, LM_HEAD} if embeddings else {LINEAR}
    roles = []
    for role, info in ckpt.roles():
        if role.kind in kinds and (pattern is None or pattern.search(role.name) or pattern.search(role.stored)):
            if info.dtype not in FLOAT_DTYPES:
                raise CheckpointFormatError(
                    f"{info.file} tensor '{info.name}'",
                    f"a float dtype {FLOAT_DTYPES}",
                    info.dtype,
                    "dequantize the checkpoint before analysing it",
                )
            roles.append(role)
    if not roles:
        raise UsageError(
            str(ckpt.path),
            "at least one tensor to analyse",
            f"none of its {len(ckpt.tensors)} tensors matched",
            "check --modules or the model type",
        )
    return sorted(roles, key=lambda r: (r.layer if r.layer is not None else -1, r.name))


def _match(base: Checkpoint, step: Checkpoint, roles: list[TensorRole], base_roles: list[TensorRole]) -> None:
    """Every selected tensor of the step is in the base with the same shape, and every tensor selected in
    the base is in the step with the same shape (a weight whose rank changed is an error, not skipped)."""
    check_same_model(base, step)
    check_none_missing([r.stored for r in base_roles], step.tensors, str(step.path))
    names = sorted({r.stored for r in roles} | {r.stored for r in base_roles})
    check_same_tensors(base.shapes, step.shapes, names, str(base.path), str(step.path))


def _reuse_base(cache: Cache, run: str, base_fp: str, settings: str) -> bool:
    """Copy the base's step 0 from another run that analysed the same base with the same settings."""
    found = cache.find_step(base_fp, base_fp)
    if found is None or found[0] == run or found[1] != 0 or not cache.step_intact(*found):
        return False
    row = cache.checkpoint_row(*found)
    if row is None or row["settings"] != settings:
        return False
    cache.copy_step(found[0], 0, run)
    return True


def _is_cached(cache: Cache, run: str, job: _Job, base_fp: str, settings: str) -> bool:
    """Cached unchanged: every file of the step folder readable (a broken one is redone), same inputs."""
    row = cache.checkpoint_row(run, job.step.step)
    return bool(
        row
        and cache.step_intact(run, job.step.step)
        and row["fingerprint"] == job.ckpt.fingerprint
        and row["base_fingerprint"] == base_fp
        and row["settings"] == settings
    )


def _checkpoint_table(
    config: AnalyzeConfig,
    job: _Job,
    base_fp: str,
    settings: str,
    device: torch.device,
    seconds: float,
    layers: pa.Table,
) -> pa.Table:
    row = {
        "run": config.run,
        "step": job.step.step,
        "path": str(job.ckpt.path.resolve()),
        "fingerprint": job.ckpt.fingerprint,
        "n_tensors": len(job.ckpt.tensors),
        "analyzed_at": datetime.now(UTC),
        "layout": job.step.layout,
        "base_path": str(Path(config.base).resolve()),
        "base_fingerprint": base_fp,
        "settings": settings,
        "n_analyzed": len(job.roles),
        "device": str(device),
        "seconds": seconds,
        "is_base": job.is_base,
        "tool_version": __version__,
    }
    hub = revision_of(job.ckpt.path.resolve())  # a model from the Hugging Face cache: its repo and commit
    row["source"], row["revision"] = hub if hub else (None, None)
    row.update(precision.record(job.ckpt, job.roles, layers))
    return pa.Table.from_pylist([row], schema=SCHEMAS["checkpoints"])
