"""The cache: immutable Parquet files written by the worker, read through DuckDB views.

Layout (one folder per analysed checkpoint, one Parquet file per analysis inside it):

    <cache>/runs/<run>/step-<N>/checkpoints.parquet  one row: what was analysed, fingerprints, settings
                                 layers.parquet       one row per (tensor, target)
                                 spectra.parquet      one row per (tensor, target): all singular values
                                 vectors.parquet      one row per top-k triplet of dW
                                 tensors.parquet      one row per stored tensor, analysed or not

A step folder is built under a hidden temporary name and moved into place with `os.replace`, so a crash
never leaves a half-visible result and readers see either the old step or the new one. Single files
added later (by other analyses) are written the same way (`write_table`).

`open_cache(path)` returns an in-memory DuckDB connection with views over those files; no process holds
a `.duckdb` file open, so any number of readers and one writer per step can work side by side.
Views are bound when the connection is opened: reopen to see steps written since.
This module imports no torch.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import publishing
from .errors import CacheError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

CACHE_ENV = "RLVR_CACHE"
DEFAULT_CACHE = "cache"

SCHEMAS: dict[str, pa.Schema] = {
    "checkpoints": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("path", pa.string()), ("fingerprint", pa.string()),
        ("n_tensors", pa.int64()), ("analyzed_at", pa.timestamp("us", tz="UTC")),
        ("layout", pa.string()), ("base_path", pa.string()), ("base_fingerprint", pa.string()),
        ("settings", pa.string()), ("n_analyzed", pa.int64()), ("device", pa.string()),
        ("seconds", pa.float64()), ("is_base", pa.bool_()), ("tool_version", pa.string()),
    ]),
    "layers": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("tensor", pa.string()), ("layer", pa.int32()),
        ("module", pa.string()), ("rows", pa.int64()), ("cols", pa.int64()), ("target", pa.string()),
        ("fro_norm", pa.float64()), ("spectral_norm", pa.float64()), ("stable_rank", pa.float64()),
        ("rank1_energy", pa.float64()), ("kind", pa.string()), ("dtype", pa.string()),
    ]),
    "spectra": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("tensor", pa.string()), ("target", pa.string()),
        ("sv", pa.list_(pa.float64())),
    ]),
    "vectors": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("tensor", pa.string()), ("k", pa.int32()),
        ("sigma", pa.float64()), ("u", pa.list_(pa.float32())), ("v", pa.list_(pa.float32())),
        ("target", pa.string()),
    ]),
    "fits": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("tensor", pa.string()), ("target", pa.string()),
        ("alpha", pa.float64()), ("xmin", pa.float64()), ("alpha_se", pa.float64()), ("ks_d", pa.float64()),
        ("n_tail", pa.int64()), ("lr_exponential", pa.float64()), ("p_exponential", pa.float64()),
        ("lr_lognormal", pa.float64()), ("p_lognormal", pa.float64()), ("lr_truncated_power_law", pa.float64()),
        ("p_truncated_power_law", pa.float64()), ("heavy_tailed", pa.bool_()), ("alpha_weighted", pa.float64()),
        ("fit_status", pa.string()), ("fit_error", pa.string()), ("log_spectral_norm", pa.float64()),
        ("log_norm", pa.float64()), ("stable_rank", pa.float64()), ("n_evals", pa.int64()),
        ("log_fro_norm", pa.float64()),
    ]),
    "esd_hist": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("tensor", pa.string()), ("target", pa.string()),
        ("bin_lo", pa.float64()), ("bin_hi", pa.float64()), ("density", pa.float64()),
    ]),
    "tensors": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("tensor", pa.string()), ("layer", pa.int32()),
        ("module", pa.string()), ("kind", pa.string()), ("dtype", pa.string()),
        ("shape", pa.list_(pa.int64())), ("analyzed", pa.bool_()),
    ]),
}
"""The columns of each per-step view (one file per step folder). The columns issues name come first, in
their order; later columns are additions."""

RUN_SCHEMAS: dict[str, pa.Schema] = {
    "alignment": pa.schema([
        ("run", pa.string()), ("tensor", pa.string()), ("step", pa.int64()), ("cos_u_final", pa.float64()),
        ("cos_u_prev", pa.float64()), ("cos_u_first", pa.float64()), ("cos_v_final", pa.float64()),
        ("cos_v_prev", pa.float64()), ("cos_v_first", pa.float64()), ("overlap_topk_final", pa.float64()),
        ("overlap_base_principal", pa.float64()), ("layer", pa.int32()), ("module", pa.string()),
        ("sigma1", pa.float64()),
    ]),
    "rank1_dynamics": pa.schema([
        ("run", pa.string()), ("tensor", pa.string()), ("layer", pa.int32()), ("module", pa.string()),
        ("n_steps", pa.int64()), ("r2_linear", pa.float64()), ("sigma1_first", pa.float64()),
        ("sigma1_final", pa.float64()),
    ]),
    "metrics": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("name", pa.string()), ("value", pa.float64()),
        ("source", pa.string()),
    ]),
    "run_summary": pa.schema([
        ("run", pa.string()), ("reward_metric", pa.string()), ("test_metric", pa.string()),
        ("spearman", pa.float64()), ("reward_peak_step", pa.int64()), ("test_peak_step", pa.int64()),
        ("n_shared_steps", pa.int64()), ("log_format", pa.string()), ("log_path", pa.string()),
    ]),
    "recovery": pa.schema([
        ("run", pa.string()), ("step", pa.int64()), ("rank", pa.int64()), ("mode", pa.string()),
        ("dataset", pa.string()), ("acc_base", pa.float64()), ("acc_full", pa.float64()), ("acc_rank", pa.float64()),
        ("recovery", pa.float64()), ("n_problems", pa.int64()), ("eval_id_base", pa.string()),
        ("eval_id_full", pa.string()), ("eval_id_rank", pa.string()),
    ]),
}
"""The columns of each per-run view (one file per run folder, rewritten whole, atomically)."""

EVAL_SCHEMAS: dict[str, pa.Schema] = {
    "evaluations": pa.schema([
        ("eval_id", pa.string()), ("run", pa.string()), ("step", pa.int64()), ("variant", pa.string()),
        ("rank", pa.int64()), ("mode", pa.string()), ("dataset", pa.string()), ("n", pa.int64()),
        ("temperature", pa.float64()), ("accuracy", pa.float64()), ("pass_at_k", pa.float64()),
        ("n_problems", pa.int64()), ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")), ("top_p", pa.float64()), ("max_new_tokens", pa.int64()),
        ("k", pa.int64()), ("model_path", pa.string()), ("model_fingerprint", pa.string()), ("backend", pa.string()),
        ("device", pa.string()), ("tokens", pa.int64()), ("tokens_per_s", pa.float64()), ("seconds", pa.float64()),
        ("dataset_kind", pa.string()), ("seed", pa.int64()),
    ]),
    "eval_samples": pa.schema([
        ("eval_id", pa.string()), ("problem_id", pa.string()), ("sample", pa.int64()), ("completion", pa.string()),
        ("extracted", pa.string()), ("correct", pa.bool_()), ("gold", pa.string()),
    ]),
}
"""The columns of the evaluation views (one folder per evaluation: `<cache>/evals/<eval_id>/`)."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def resolve_cache(path: str | Path | None) -> Path:
    """The cache folder: `path` if given, else $RLVR_CACHE, else ./cache."""
    return Path(path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def check_run_name(run: str) -> str:
    """Return `run` if it is safe as a folder name, else raise UsageError."""
    if not _SAFE_NAME.match(run) or run in (".", ".."):
        raise UsageError(f"run name {run!r}", "letters, digits, '.', '_' or '-' (at most 128, no leading dot)",
                         repr(run), "pass --run NAME with a simple name")
    return run


def step_dir(cache: Path, run: str, step: int) -> Path:
    return cache / "runs" / check_run_name(run) / f"step-{step}"


def write_step(cache: Path, run: str, step: int, tables: dict[str, pa.Table]) -> Path:
    """Atomically publish one analysed step: all `tables` appear together or not at all."""
    final = step_dir(cache, run, step)
    parent = final.parent
    _writable(parent)
    _remove_stale(parent)
    with publishing(final, f"step-{step}") as tmp:
        for name, table in tables.items():
            pq.write_table(table.cast(SCHEMAS[name]), tmp / f"{name}.parquet")
    return final


STALE_SECONDS = 6 * 3600


def _writable(folder: Path) -> None:
    """Create `folder` (and parents), or raise CacheError naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(str(folder), "a writable cache folder", f"{type(exc).__name__}: {exc}",
                         "choose another --cache DIR or fix its permissions") from exc


def _remove_stale(run_dir: Path) -> None:
    """Delete temporary step folders left by a killed writer (older than STALE_SECONDS, so never one
    that a live writer is still filling)."""
    now = time.time()
    for leftover in list(run_dir.glob(".tmp-step-*")) + list(run_dir.glob(".old-step-*")):
        try:
            if now - leftover.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def write_table(path: Path, table: pa.Table) -> None:
    """Atomically write one Parquet file (temp name in the same folder, then os.replace)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_run_tables(cache: Path, run: str, tables: dict[str, pa.Table]) -> Path:
    """Write run-level files (`RUN_SCHEMAS`), each atomically; the run folder is created if needed."""
    folder = cache / "runs" / check_run_name(run)
    _writable(folder)
    for name, table in tables.items():
        write_table(folder / f"{name}.parquet", table.cast(RUN_SCHEMAS[name]))
    return folder


def write_eval(cache: Path, eval_id: str, tables: dict[str, pa.Table]) -> Path:
    """Atomically publish one evaluation folder (`EVAL_SCHEMAS` tables), replacing an older one."""
    parent = cache / "evals"
    _writable(parent)
    with publishing(parent / check_run_name(eval_id)) as tmp:
        for name, table in tables.items():
            pq.write_table(table.cast(EVAL_SCHEMAS[name]), tmp / f"{name}.parquet")
    final = parent / eval_id
    return final


def remove_run(cache: Path, run: str) -> bool:
    """Delete a run's cached files (moved aside first, so readers never see half a run). True if it existed."""
    folder = cache / "runs" / check_run_name(run)
    if not folder.exists():
        return False
    doomed = folder.with_name(f".removed-{run}-{uuid.uuid4().hex[:8]}")
    os.replace(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def read_checkpoint_row(cache: Path, run: str, step: int) -> dict | None:
    """The stored `checkpoints` row of one step, or None when the step is not cached."""
    file = step_dir(cache, run, step) / "checkpoints.parquet"
    if not file.is_file():
        return None
    rows = pq.read_table(file).to_pylist()
    return rows[0] if rows else None


def open_cache(path: str | Path | None = None) -> "duckdb.DuckDBPyConnection":
    """An in-memory DuckDB connection with one view per schema in `SCHEMAS` and `RUN_SCHEMAS`
    (`checkpoints`, `layers`, `spectra`, `vectors`, `tensors`, `fits`, `esd_hist`, `alignment`,
    `rank1_dynamics`, ...) over the Parquet files of the cache at `path` (see `resolve_cache`), and
    `alignment_by_module` (alignment aggregated over layers per module kind: mean and quartiles)."""
    import duckdb  # only readers need it: the worker writes Parquet with pyarrow alone

    cache = resolve_cache(path)
    con = duckdb.connect(":memory:")
    views = [(name, schema, f"runs/*/step-*/{name}.parquet") for name, schema in SCHEMAS.items()]
    views += [(name, schema, f"runs/*/{name}.parquet") for name, schema in RUN_SCHEMAS.items()]
    views += [(name, schema, f"evals/*/{name}.parquet") for name, schema in EVAL_SCHEMAS.items()]
    for name, schema, pattern in views:
        files = sorted(cache.glob(pattern))
        columns = ", ".join(f'"{field.name}"' for field in schema)
        if files:
            listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            source = f"read_parquet([{listing}], union_by_name = true)"
        else:
            empty = pa.Table.from_pylist([], schema=schema)
            con.register(f"_empty_{name}", empty)
            source = f"_empty_{name}"
        con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM {source}")
    con.execute(_ALIGNMENT_BY_MODULE)
    return con


_ALIGNED = ("cos_u_final", "cos_u_prev", "cos_u_first", "cos_v_final", "cos_v_prev", "cos_v_first",
            "overlap_topk_final", "overlap_base_principal")
_ALIGNMENT_BY_MODULE = (
    "CREATE VIEW alignment_by_module AS SELECT run, module, step, count(*) AS n_tensors, "
    + ", ".join(f"avg({c}) AS {c}_mean, quantile_cont({c}, 0.25) AS {c}_q1, median({c}) AS {c}_median, "
                f"quantile_cont({c}, 0.75) AS {c}_q3" for c in _ALIGNED)
    + " FROM alignment GROUP BY run, module, step")
"""Alignment aggregated over the layers of each module kind (mean and quartiles), for the dashboard."""


def list_column(arrays: list[np.ndarray], value_type: pa.DataType) -> pa.ListArray:
    """A LIST column from a list of 1-D numpy arrays, without Python-level boxing of the values."""
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int32, count=len(arrays))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type))
