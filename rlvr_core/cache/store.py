"""The cache: one owner for its folder layout, its writes (atomic, merges under a lock) and its reads.

Layout (`Cache` computes every path; nothing else in the tool spells one):

    <cache>/runs/<run>/step-<N>/<view>.parquet   one folder per analysed checkpoint (`SCHEMAS` views)
    <cache>/runs/<run>/<view>.parquet            run-level results (`RUN_SCHEMAS` views)
    <cache>/runs/<run>/.lock                     the lock of read-merge-write updates of the run's files
    <cache>/evals/<eval_id>/<view>.parquet       one folder per evaluation (`EVAL_SCHEMAS` views)
    <cache>/variants/<run>/step-<N>-rank<k>-<mode>[-a<alpha>]-keep<base|step>/
                                                 rank-k checkpoints built by `rlvr compare`
    <cache>/jobs.sqlite, <cache>/jobs/<id>.log   the job queue and each job's output
    <cache>/jobs.sqlite.lock                     held while a process sets the queue's file up

Writes: a step or evaluation folder is built under a hidden temporary name and moved into place with
`os.replace` (`atomic.publishing`), so readers see the old folder or the new one, never half of one; a
single run-level file is replaced the same way. A run-level file that several processes update (the
`recovery` rows of two `compare` jobs) is read, merged and rewritten under an exclusive `fcntl` lock on
the run, so a merge by two processes keeps both rows.

Reads: `open_cache(path)` returns an in-memory DuckDB connection with one view per schema; no process
holds a `.duckdb` file open, so any number of readers and one writer per step work side by side. Views
are bound when the connection is opened: reopen to see steps written since. `Cache.queries()` wraps such
a connection with the named queries the pages and the CLI use (`queries.Queries`).

May import: `rlvr_core.errors`, `rlvr_core.system.settings`; pyarrow, numpy, duckdb (readers only). Never
torch: the dashboard reads through this module.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CacheError, UsageError
from ..system.settings import CACHE_ENV, DEFAULT_CACHE
from . import owners
from .atomic import publishing, write_file_atomic
from .schemas import RUN_SCHEMAS, SCHEMAS
from .schemas_eval import EVAL_SCHEMAS
from .views import connect_views, read_columns

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from .queries import Queries

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CACHE",
    "Cache",
    "check_run_name",
    "open_cache",
    "resolve_cache",
]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_name(run: str) -> str:
    """Return `run` if it is safe as a folder name, else raise UsageError."""
    if not _SAFE_NAME.match(run) or run in (".", ".."):
        raise UsageError(
            f"run name {run!r}",
            "letters, digits, '.', '_' or '-' (at most 128, no leading dot)",
            repr(run),
            "pass --run NAME with a simple name",
        )
    return run


def resolve_cache(path: str | Path | None) -> Path:
    """The cache folder: `path` if given, else the settings' (`$RLVR_CACHE`, the config file's `cache`,
    else ./cache)."""
    if path:
        return Path(path)
    from ..system.settings import load_settings

    return Path(load_settings().cache)


class Cache:
    """One cache folder. Cheap to construct: nothing is read or created until a method needs it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    @classmethod
    def open(cls, path: str | Path | None = None) -> Cache:
        """The cache at `path`, else where the settings say (see `resolve_cache`)."""
        return cls(resolve_cache(path))

    # ---- layout --------------------------------------------------------------------------------------
    def run_dir(self, run: str) -> Path:
        return self.root / "runs" / check_run_name(run)

    def fingerprint(self, run: str) -> str:
        """sha256 over the run's cache files (their paths in the run folder and their bytes): which results a
        report was made from."""

        digest = hashlib.sha256()
        folder = self.run_dir(run)
        for file in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
            if any(part.startswith(".") for part in file.relative_to(folder).parts):
                continue  # temporary folders being published
            digest.update(str(file.relative_to(folder)).encode() + b"\0")
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def step_dir(self, run: str, step: int) -> Path:
        return self.run_dir(run) / f"step-{int(step)}"

    def eval_dir(self, eval_id: str) -> Path:
        return self.root / "evals" / check_run_name(eval_id)

    @property
    def variants_root(self) -> Path:
        """The folder of every checkpoint the tool itself writes into the cache (rank-k variants, predictions):
        readable under data roots, since only the tool writes there."""
        return self.root / "variants"

    def prediction_dir(self, run: str, from_step: int, to_step: int, rank: int) -> Path:
        """Where the dashboard has `rlvr predict` write a run's predicted checkpoint."""
        name = f"predicted-from-{int(from_step)}-to-{int(to_step)}-rank{int(rank)}"
        return self.root / "variants" / check_run_name(run) / name

    def variant_dir(
        self, run: str, step: int, rank: int, mode: str, alpha: float, keep: str, modules: str | None = None
    ) -> Path:
        """Where `rlvr compare` builds the rank-k checkpoint of one of `run`'s steps (one folder per recipe:
        a `--modules` pattern adds its hash, so comparisons of other modules never overwrite each other)."""
        scale = "" if alpha == 1 else f"-a{alpha:g}"
        only = f"-m{hashlib.sha256(modules.encode()).hexdigest()[:8]}" if modules else ""
        return (
            self.root
            / "variants"
            / check_run_name(run)
            / check_run_name(f"step-{int(step)}-rank{int(rank)}-{mode}{scale}-keep{keep}{only}")
        )

    @property
    def jobs_db(self) -> Path:
        return self.root / "jobs.sqlite"

    @property
    def jobs_lock(self) -> Path:
        return self.root / "jobs.sqlite.lock"

    def job_log(self, job_id: str) -> Path:
        return self.root / "jobs" / f"{check_run_name(job_id)}.log"

    # ---- writes --------------------------------------------------------------------------------------
    def ensure(self) -> Path:
        """Create the cache folder (or raise CacheError naming it); returns it."""
        _writable(self.root)
        return self.root

    def write_step(self, run: str, step: int, tables: Mapping[str, pa.Table]) -> Path:
        """Atomically publish one analysed step: all `tables` (`SCHEMAS` views) appear together or not at all."""
        final = self.step_dir(run, step)
        _writable(final.parent)
        with publishing(final, f"step-{step}") as tmp:
            for name, table in tables.items():
                pq.write_table(table.cast(SCHEMAS[name]), tmp / f"{name}.parquet")
        return final

    def copy_step(self, source_run: str, step: int, run: str) -> Path:
        """Publish another run's cached step as this run's (its rows with `run` renamed), atomically: a base
        model several runs share is analysed once."""
        source = self.step_dir(source_run, step)
        tables = {}
        for file in sorted(source.glob("*.parquet")):
            table = pq.read_table(file)
            if "run" in table.column_names:
                index = table.column_names.index("run")
                table = table.set_column(index, "run", pa.array([run] * table.num_rows, pa.string()))
            tables[file.stem] = table
        return self.write_step(run, step, tables)

    def write_run_tables(self, run: str, tables: Mapping[str, pa.Table]) -> Path:
        """Replace run-level files (`RUN_SCHEMAS` views), each atomically."""
        folder = self.run_dir(run)
        _writable(folder)
        for name, table in tables.items():
            _write_parquet(folder / f"{name}.parquet", table.cast(RUN_SCHEMAS[name]))
        return folder

    def claim_run(
        self, run: str, user: str, sources: Iterable[str], force: bool = False, shared: bool = False
    ) -> owners.RunRecord:
        """Check that `user` may write `run` from `sources`, and record its owner and sources (`owners`)."""
        folder = self.run_dir(run)
        _writable(folder)
        with self._locked(run):
            return owners.claim(folder, run, user, tuple(sources), force, shared)

    def merge_run_rows(self, run: str, name: str, rows: list[dict[str, Any]], key: Iterable[str]) -> pa.Table:
        """Add `rows` to the run-level view `name`, replacing stored rows with the same `key` columns and
        keeping all others; read, merge and write happen under the run's lock, so concurrent merges by
        several processes keep every row. Returns the merged table."""
        columns = tuple(key)
        folder = self.run_dir(run)
        _writable(folder)
        with self._locked(run):
            old = self._read_rows(folder / f"{name}.parquet")
            new_keys = {tuple(r.get(c) for c in columns) for r in rows}
            kept = [r for r in old if tuple(r.get(c) for c in columns) not in new_keys]  # older files may lack a key
            table = pa.Table.from_pylist(kept + rows, schema=RUN_SCHEMAS[name])
            _write_parquet(folder / f"{name}.parquet", table)
        return table

    def write_eval(self, eval_id: str, tables: Mapping[str, pa.Table]) -> Path:
        """Atomically publish one evaluation folder (`EVAL_SCHEMAS` views), replacing an older one."""
        final = self.eval_dir(eval_id)
        _writable(final.parent)
        with publishing(final) as tmp:
            for name, table in tables.items():
                pq.write_table(table.cast(EVAL_SCHEMAS[name]), tmp / f"{name}.parquet")
        return final

    def remove_run(self, run: str) -> bool:
        """Delete a run's cached files (moved aside first, so readers never see half a run). True if it existed."""
        folder = self.run_dir(run)
        if not folder.exists():
            return False
        doomed = folder.with_name(f".removed-{run}-{uuid.uuid4().hex[:8]}")
        os.replace(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def copy_runs_from(self, other: Cache) -> None:
        """Copy another cache's runs and evaluations into this one (the prebuilt demo on a first start)."""
        for part in ("runs", "evals"):
            if (other.root / part).is_dir():
                shutil.copytree(other.root / part, self.root / part, dirs_exist_ok=True)

    @contextmanager
    def _locked(self, run: str) -> Iterator[None]:
        with open(self.run_dir(run) / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _read_rows(file: Path) -> list[dict[str, Any]]:
        """The rows of one file; none when it is missing or unreadable (a broken file is as good as none)."""
        if not file.is_file():
            return []
        try:
            return pq.read_table(file).to_pylist()
        except Exception:  # truncated or corrupt: pyarrow raises its own types
            return []

    # ---- reads for the pipelines ---------------------------------------------------------------------
    def has_runs(self) -> bool:
        """True when at least one step of any run is cached."""
        return any(not p.parent.name.startswith(".") for p in (self.root / "runs").glob("*/step-*"))

    def checkpoint_row(self, run: str, step: int) -> dict[str, Any] | None:
        """The stored `checkpoints` row of one step, or None when the step is not cached."""
        rows = self._read_rows(self.step_dir(run, step) / "checkpoints.parquet")
        return rows[0] if rows else None

    def step_intact(self, run: str, step: int) -> bool:
        """True when the step folder holds its `checkpoints` file and every file in it can be read with its
        view's column types (`views.read_columns`)."""
        folder = self.step_dir(run, step)
        if not (folder / "checkpoints.parquet").is_file():
            return False
        return not any(read_columns(self.root, file)[1] for file in folder.glob("*.parquet"))

    def eval_row(self, eval_id: str) -> dict[str, Any] | None:
        """The stored `evaluations` row of one evaluation, or None."""
        rows = self._read_rows(self.eval_dir(eval_id) / "evaluations.parquet")
        return rows[0] if rows else None

    def eval_scores(self, eval_id: str) -> dict[str, float]:
        """problem_id -> the share of its samples graded correct, for one stored evaluation."""
        file = self.eval_dir(eval_id) / "eval_samples.parquet"
        if not file.is_file():
            return {}
        table = (
            pq.read_table(file, columns=["problem_id", "correct"])
            .group_by("problem_id")
            .aggregate([("correct", "mean")])
        )
        return dict(zip(table.column("problem_id").to_pylist(), table.column("correct_mean").to_pylist()))

    def steps_with(self, run: str, view: str) -> list[int]:
        """The cached steps of `run` that hold the per-step view `view`, ascending."""
        folder = self.run_dir(run)
        return sorted(
            int(p.name[5:]) for p in folder.glob("step-*") if p.name[5:].isdigit() and (p / f"{view}.parquet").is_file()
        )

    def has_run_view(self, run: str, view: str) -> bool:
        """True when the run-level view `view` (`RUN_SCHEMAS`) has a file for `run`."""
        return (self.run_dir(run) / f"{view}.parquet").is_file()

    def read_run(self, run: str, view: str, columns: list[str] | None = None) -> pa.Table | None:
        """One run-level view of `run` (only `columns` when given), or None when absent or unreadable."""
        file = self.run_dir(run) / f"{view}.parquet"
        try:
            return pq.read_table(file, columns=columns) if file.is_file() else None
        except Exception:  # truncated or corrupt: as good as none
            return None

    def read_step(self, run: str, step: int, view: str, columns: list[str] | None = None) -> pa.Table | None:
        """One per-step view of one cached step (only `columns` when given), or None when absent."""
        file = self.step_dir(run, step) / f"{view}.parquet"
        return pq.read_table(file, columns=columns) if file.is_file() else None

    def step_triplets(self, run: str, step: int, target: str = "dW") -> dict[str, tuple[Any, Any, Any]] | None:
        """tensor -> (sigma (k,), u (rows x k), v (cols x k)) as float64 numpy arrays: the top-k triplets of
        each update dW (or of W: `target="W"`, the base step's principal directions) the analysis of one step
        cached (`vectors`), in k order; None when it has none."""
        import numpy as np

        table = self.read_step(run, step, "vectors")
        if table is None:
            return None
        by_tensor: dict[str, list[dict]] = {}
        for r in table.to_pylist():
            if r.get("target", "dW") == target:
                by_tensor.setdefault(r["tensor"], []).append(r)
        result = {}
        for tensor, rows in by_tensor.items():
            rows.sort(key=lambda r: r["k"])
            result[tensor] = (
                np.array([r["sigma"] for r in rows], dtype=np.float64),
                np.array([r["u"] for r in rows], dtype=np.float64).T,
                np.array([r["v"] for r in rows], dtype=np.float64).T,
            )
        return result

    def step_spectra(self, run: str, step: int, target: str) -> dict[str, Any]:
        """tensor -> its whole spectrum (float64 numpy, descending) of `target` at one cached step."""
        table = self.read_step(run, step, "spectra", ["tensor", "target", "sv"])
        if table is None:
            return {}
        keep = [i for i, t in enumerate(table.column("target").to_pylist()) if t == target]
        names, svs = table.column("tensor").to_pylist(), table.column("sv")
        return {names[i]: svs[i].values.to_numpy(zero_copy_only=False) for i in keep}

    def find_step(self, fingerprint: str, base_fingerprint: str) -> tuple[str, int] | None:
        """(run, step) of a cached step analysed from exactly this checkpoint against exactly this base."""
        for row_file in sorted((self.root / "runs").glob("*/step-*/checkpoints.parquet")):
            if row_file.parent.parent.name.startswith("."):
                continue
            rows = self._read_rows(row_file)
            if rows and rows[0]["fingerprint"] == fingerprint and rows[0]["base_fingerprint"] == base_fingerprint:
                return rows[0]["run"], int(rows[0]["step"])
        return None

    # ---- reads for the pages and the CLI -------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the views (see `open_cache`)."""
        return connect_views(self.root)

    def queries(self) -> Queries:
        """The named queries over a fresh connection (views bound now)."""
        from .queries import Queries

        return Queries(self.connect())


def open_cache(path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per schema in `SCHEMAS`, `RUN_SCHEMAS` and
    `EVAL_SCHEMAS` (`checkpoints`, `layers`, `spectra`, `vectors`, `tensors`, `fits`, `esd_hist`,
    `alignment`, `rank1_dynamics`, `metrics`, `run_summary`, `recovery`, `evaluations`, `eval_samples`)
    over the Parquet files of the cache at `path` (see `resolve_cache`), and `alignment_by_module`
    (alignment aggregated over layers per module kind: mean and quartiles)."""
    return connect_views(resolve_cache(path))


def _writable(folder: Path) -> None:
    """Create `folder` (and parents), or raise CacheError naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(
            str(folder),
            "a writable cache folder",
            f"{type(exc).__name__}: {exc}",
            "choose another --cache DIR or fix its permissions",
        ) from exc


def _write_parquet(path: Path, table: pa.Table) -> None:
    write_file_atomic(path, lambda tmp: pq.write_table(table, tmp))
