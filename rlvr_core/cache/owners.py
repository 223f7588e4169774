"""Who a run belongs to, and where its weights come from: `runs/<run>/run.json`.

Run names are one namespace for every user of a cache, so a run records its owner (the user who first
analysed it) and its sources (the run folders, or the models of a `--pair`, it was analysed from). Before
`rlvr analyze` writes a step it claims the run (`claim`, under the run's lock):
- a new run (or one cached before runs had records) is recorded with this user and these sources;
- the same owner writing from a recorded source goes ahead (new sources are added with `force`);
- another source (other weights under the same name: `analyze --pair X --run alice-run --step 10` once
  replaced alice's step 10 silently) needs `--force`;
- another user needs `--force` on the command line, and is refused outright in a job of a shared server
  (`shared`), where the run's owner never agreed to it.
The record is written atomically (temporary file, then `os.replace`). May import: errors, atomic.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UsageError
from .atomic import write_file_atomic

RECORD = "run.json"
"""The run-level file holding a run's owner and sources."""


@dataclass(frozen=True)
class RunRecord:
    """A run's owner and sources."""

    owner: str
    """The user who first analysed the run (a job's submitter on a server)."""
    sources: tuple[str, ...]
    """Where its checkpoints were read: run folders, or models (paths or Hub ids) of a `--pair`."""
    created_at: str
    """When the run was first claimed (ISO 8601, UTC)."""


def read_record(run_dir: Path) -> RunRecord | None:
    """The run's record, or None (no record, or one that cannot be read)."""
    try:
        raw = json.loads((run_dir / RECORD).read_text(encoding="utf-8"))
        return RunRecord(str(raw["owner"]), tuple(str(s) for s in raw["sources"]), str(raw["created_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim(run_dir: Path, run: str, user: str, sources: tuple[str, ...], force: bool, shared: bool) -> RunRecord:
    """Check that `user` may write `run` from `sources` (see the module docstring) and record it; the caller
    holds the run's lock. Raises UsageError naming the run, its owner or sources, and the fix."""
    record = read_record(run_dir)
    if record is None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return _write(run_dir, RunRecord(user, tuple(sorted(set(sources))), now))
    if record.owner != user and (shared or not force):
        fix = f"pick another --run name{'' if shared else ', or pass --force to write into it anyway'}"
        raise UsageError(f"run '{run}'", f"a run of yours ({user})", f"a run of {record.owner}", fix)
    new = sorted(set(sources) - set(record.sources))
    if new and not force:
        raise UsageError(
            f"run '{run}'", f"checkpoints from its source{'s' if len(record.sources) > 1 else ''} "
            f"{', '.join(record.sources)}", f"{', '.join(new)}",
            "pick another --run name for other weights, or pass --force to add them to this run",
        )  # fmt: skip
    if new:
        return _write(run_dir, RunRecord(record.owner, (*record.sources, *new), record.created_at))
    return record


def _write(run_dir: Path, record: RunRecord) -> RunRecord:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**asdict(record), "sources": list(record.sources)}, indent=2) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    write_file_atomic(run_dir / RECORD, write)
    return record
