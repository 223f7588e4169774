"""The cache's DuckDB views over its Parquet files, and which files can be read.

`connect_views(cache)` returns an in-memory DuckDB connection with one view per schema (`SCHEMAS`,
`RUN_SCHEMAS`, `EVAL_SCHEMAS`), `alignment_by_module`, and `broken`. Only files in visible folders are
read (a writer's temporary folder and a removed run start with a dot), and each file's footer is read
first and its column types checked against the view's schema: a truncated or corrupt file, or one with a
column of another type (hand-edited, another version), is listed in `broken` and left out, with the rest of
its step or evaluation folder, so one bad file never hides the rest of the cache. A column added to a schema after
a file was written reads as NULL there.

May import: pyarrow, duckdb, and this package's schemas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import RUN_SCHEMAS, SCHEMAS
from .schemas_eval import EVAL_SCHEMAS

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
            names, problem = read_columns(cache, file)
            if problem:
                errors.append((file, problem))
            else:
                read[file] = names
        if errors and (folder.name.startswith("step-") or folder.parent.name == "evals"):
            read = {}  # the whole step (or evaluation) is broken
        scan.broken += [_broken_row(cache, file, error) for file, error in errors]
        for file, names in read.items():
            scan.files.setdefault(file.stem, []).append((file, names))
    return scan


def read_columns(cache: Path, file: Path) -> tuple[set[str], str | None]:
    """(column names, None) of a readable cache file whose columns have its view's types, else (set(), why
    not): its footer is read (truncated or not Parquet) and its types checked."""
    try:
        found = pq.ParquetFile(file).schema_arrow
    except Exception as exc:  # truncated or not Parquet: pyarrow raises its own types
        return set(), f"{type(exc).__name__}: {exc}"[:300]
    mismatch = _type_mismatch(found, _expected_schema(cache, file))
    return (set(), mismatch) if mismatch else (set(found.names), None)


def _expected_schema(cache: Path, file: Path) -> pa.Schema | None:
    """The schema a cache file must follow: by its view name and where it lies (step, run, evaluation)."""
    parts = file.relative_to(cache).parts
    if parts[0] == "evals":
        return EVAL_SCHEMAS.get(file.stem)
    return (SCHEMAS if len(parts) == 4 else RUN_SCHEMAS).get(file.stem)


def _type_mismatch(found: pa.Schema, expected: pa.Schema | None) -> str | None:
    """Why a file's columns cannot be read as its view's (a column of another kind of type: a hand-edited
    file, or another version's), else None. Widths may differ (int32 for int64, float for double)."""
    if expected is None:
        return None
    for column in expected:
        index = found.get_field_index(column.name)
        if index >= 0 and _kind(found.field(index).type) != _kind(column.type):
            return f"column '{column.name}' is {found.field(index).type}, expected {column.type}"
    return None


def _kind(t: pa.DataType) -> str:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list of " + _kind(t.value_type)
    for test, kind in ((pa.types.is_boolean, "bool"), (pa.types.is_integer, "integer"),
                       (pa.types.is_floating, "number"), (pa.types.is_string, "text"),
                       (pa.types.is_large_string, "text"), (pa.types.is_timestamp, "time")):  # fmt: skip
        if test(t):
            return kind
    if pa.types.is_null(t):
        return "null"
    return str(t)


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
    "binary": "BLOB",
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
