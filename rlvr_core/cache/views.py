"""The cache's DuckDB views over its Parquet files, and which files can be read.

`connect_views(cache)` returns an in-memory DuckDB connection with one view per schema (`SCHEMAS`,
`RUN_SCHEMAS`, `EVAL_SCHEMAS`), `alignment_by_module`, and `broken`. Only files in visible folders are
read (a writer's temporary folder and a removed run start with a dot), and each file's footer is read
first: a truncated or corrupt file is listed in `broken` and left out, with the rest of its step or
evaluation folder, so one bad file never hides the rest of the cache. A column added to a schema after
a file was written reads as NULL there.

May import: pyarrow, duckdb, and this package's schemas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import EVAL_SCHEMAS, RUN_SCHEMAS, SCHEMAS

if TYPE_CHECKING:  # pragma: no cover
    import duckdb


def connect_views(cache: Path) -> duckdb.DuckDBPyConnection:
    import duckdb  # only readers need it: the worker writes Parquet with pyarrow alone

    con = duckdb.connect(":memory:")
    scan = scan_files(cache)
    for name, schema in (*SCHEMAS.items(), *RUN_SCHEMAS.items(), *EVAL_SCHEMAS.items()):
        files = scan.files.get(name, [])
        if files:
            listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f, _ in files)
            source = f"read_parquet([{listing}], union_by_name = true)"
            present = set().union(*(names for _, names in files))
            columns = ", ".join(
                f'"{f.name}"' if f.name in present else f'CAST(NULL AS {_DUCK_TYPES[str(f.type)]}) AS "{f.name}"'
                for f in schema
            )
        else:
            con.register(f"_empty_{name}", pa.Table.from_pylist([], schema=schema))
            source, columns = f"_empty_{name}", ", ".join(f'"{field.name}"' for field in schema)
        con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM {source}")
    con.register("_broken", pa.Table.from_pylist(scan.broken, schema=BROKEN_SCHEMA))
    con.execute("CREATE VIEW broken AS SELECT * FROM _broken")
    con.execute(_ALIGNMENT_BY_MODULE)
    return con


BROKEN_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("run", pa.string()),
        ("step", pa.int64()),
        ("eval_id", pa.string()),
        ("view", pa.string()),
        ("error", pa.string()),
    ]
)
"""The `broken` view: cache files that cannot be read (truncated, corrupt), left out of every other view
together with the rest of their step or evaluation folder. The next `rlvr analyze` of the step (or the
next identical evaluation) writes it anew."""


@dataclass
class FileScan:
    """The readable Parquet files of each view (with their column names) and the broken ones."""

    files: dict[str, list[tuple[Path, set[str]]]] = field(default_factory=dict)
    broken: list[dict[str, Any]] = field(default_factory=list)


def scan_files(cache: Path) -> FileScan:
    """Every view's files: only in visible folders (temporary and removed folders start with a dot), each
    footer read; a step or evaluation folder with one unreadable file is left out whole."""
    scan = FileScan()
    groups: dict[Path, list[Path]] = {}
    for pattern in ("runs/*/step-*/*.parquet", "runs/*/*.parquet", "evals/*/*.parquet"):
        for file in sorted(cache.glob(pattern)):
            if not any(part.startswith(".") for part in file.relative_to(cache).parts):
                groups.setdefault(file.parent, []).append(file)
    for folder, files in groups.items():
        read, errors = {}, []
        for file in files:
            try:
                read[file] = set(pq.ParquetFile(file).schema_arrow.names)
            except Exception as exc:  # truncated or not Parquet: pyarrow raises its own types
                errors.append((file, f"{type(exc).__name__}: {exc}"[:300]))
        if errors and (folder.name.startswith("step-") or folder.parent.name == "evals"):
            read = {}  # the whole step (or evaluation) is broken
        scan.broken += [_broken_row(cache, file, error) for file, error in errors]
        for file, names in read.items():
            scan.files.setdefault(file.stem, []).append((file, names))
    return scan


def _broken_row(cache: Path, file: Path, error: str) -> dict[str, Any]:
    parts = file.relative_to(cache).parts
    row: dict[str, Any] = {
        "path": str(file),
        "run": None,
        "step": None,
        "eval_id": None,
        "view": file.stem,
        "error": error,
    }
    if parts[0] == "runs":
        row["run"] = parts[1]
        if len(parts) == 4 and parts[2][5:].isdigit():
            row["step"] = int(parts[2][5:])
    else:
        row["eval_id"] = parts[1]
    return row


_DUCK_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "int32": "INTEGER",
    "double": "DOUBLE",
    "float": "FLOAT",
    "bool": "BOOLEAN",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
    "list<item: double>": "DOUBLE[]",
    "list<item: float>": "FLOAT[]",
    "list<item: int64>": "BIGINT[]",
}
"""Arrow type (as `str(pa.DataType)`) -> DuckDB type, for columns added to a schema after files were written."""


ALIGNMENT_MEASURES = (
    "cos_u_final",
    "cos_u_prev",
    "cos_u_first",
    "cos_v_final",
    "cos_v_prev",
    "cos_v_first",
    "overlap_topk_final",
    "overlap_base_principal",
)
"""Measures of the `alignment` view (each also aggregated in `alignment_by_module`); a public name, also
importable from `rlvr_core.cache.queries`."""
_ALIGNMENT_BY_MODULE = (
    "CREATE VIEW alignment_by_module AS SELECT run, module, step, count(*) AS n_tensors, "
    + ", ".join(
        f"avg({c}) AS {c}_mean, quantile_cont({c}, 0.25) AS {c}_q1, median({c}) AS {c}_median, "
        f"quantile_cont({c}, 0.75) AS {c}_q3"
        for c in ALIGNMENT_MEASURES
    )
    + " FROM alignment GROUP BY run, module, step"
)
"""Alignment aggregated over the layers of each module kind (mean and quartiles), for the dashboard."""
