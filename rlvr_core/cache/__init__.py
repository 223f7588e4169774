"""The cache: the one owner of the Parquet results, their folder layout, schemas and queries.

- `store`: `Cache` (folder layout, atomic writes, locked merges, reads for the pipelines) and
  `open_cache(path)` (DuckDB views over the Parquet files; the public entry point for users' scripts).
- `schemas`: the columns of every view (a public contract).
- `queries`: the named queries the dashboard, the CLI and the demo ask.
- `queue` / `watches`: the job queue and the registered watches (one SQLite database in the cache).
- `atomic`: atomic publishing of folders and files (also used by the checkpoint writers).

Everything else (pipelines, CLI, pages) goes through this package: no other module spells a cache path
or a SQL string. May import: `rlvr_core.errors`, `rlvr_core.system`; pyarrow, numpy, duckdb. Never torch.
"""

from .atomic import publishing
from .schemas import RUN_SCHEMAS, SCHEMAS
from .schemas_eval import EVAL_SCHEMAS, list_column
from .store import CACHE_ENV, DEFAULT_CACHE, Cache, check_run_name, open_cache, resolve_cache

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CACHE",
    "EVAL_SCHEMAS",
    "RUN_SCHEMAS",
    "SCHEMAS",
    "Cache",
    "check_run_name",
    "list_column",
    "open_cache",
    "publishing",
    "resolve_cache",
]
