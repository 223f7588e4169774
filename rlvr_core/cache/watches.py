"""Registered watches: the runs `rlvr serve` follows while they train (`rlvr submit watch`, the Runs page's
"keep watching"), stored next to the job queue (same SQLite file, `Cache.jobs_db`) so that they outlive
any process: a restart of `rlvr serve` resumes every watch where it was.

Two tables, and every statement on them, live here:
- `watches`: one row per run name: what to follow (run folder, base, log, interval, settle, the analysis
  options), who registered it, `state` (`watching` | `stopped`), and what the watcher last did (last look,
  next look, last checkpoint seen, the log's stamp and ingestion job, the monitor's flag, a message).
- `watch_steps`: one row per checkpoint seen: its folder, why it is not complete yet (`reason`), and the
  analysis job queued for it once it was (`job_id`). A step with a job is never queued again: each step
  is analysed once, whatever restarts happen in between.
A step counts as analysed when its job is `done` (the job publishes into the cache before it ends).
The watcher (`rlvr_core.service.watcher`) is the only writer besides `register` and `stop`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from . import queue as jobs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    run TEXT PRIMARY KEY, run_dir TEXT NOT NULL, base TEXT NOT NULL, log TEXT, interval REAL NOT NULL,
    settle REAL NOT NULL, options TEXT NOT NULL, submitted_by TEXT, created_at REAL NOT NULL,
    state TEXT NOT NULL, last_poll REAL, next_poll REAL NOT NULL, last_seen_step INTEGER, log_stamp TEXT,
    log_job TEXT, log_checked TEXT, flag_since INTEGER, message TEXT NOT NULL DEFAULT '', stopped_by TEXT);
CREATE TABLE IF NOT EXISTS watch_steps (
    run TEXT NOT NULL, step INTEGER NOT NULL, path TEXT NOT NULL, reason TEXT, job_id TEXT,
    seen_at REAL NOT NULL, queued_at REAL, PRIMARY KEY (run, step));
"""
_UPDATABLE = {
    "last_poll",
    "next_poll",
    "last_seen_step",
    "log_stamp",
    "log_job",
    "log_checked",
    "flag_since",
    "message",
}


@dataclass(frozen=True, kw_only=True)
class WatchSpec:
    """What a registered watch follows (the flags of `rlvr watch` that a registered watch keeps)."""

    run: str
    """The run's name in the cache (one watch per run)."""
    run_dir: str
    """The run folder the trainer writes checkpoints into (absolute)."""
    base: str
    """The base model folder (absolute)."""
    log: str | None = None
    """The training log (file or folder, absolute) ingested again as it grows; None: no log."""
    interval: float = 30.0
    """Seconds between two looks at the run folder."""
    settle: float = 30.0
    """Seconds a checkpoint (or the log) must stay unchanged before it is read."""
    options: dict = field(default_factory=dict)
    """The analysis options: `device`, `modules`, `fits` (as the flags of `rlvr analyze`)."""


@dataclass(frozen=True)
class Watch:
    """One registered watch as the Jobs page and `rlvr watches` show it."""

    spec: WatchSpec
    state: str
    submitted_by: str | None
    created_at: float
    last_poll: float | None
    next_poll: float
    last_seen_step: int | None
    last_analysed_step: int | None
    """The newest step whose analysis job is done."""
    last_analysed_at: float | None
    steps: dict[str, int]
    """How many seen steps are `waiting` (not complete), `queued`/`running`, `done`, `failed`/`cancelled`."""
    log_stamp: str | None
    log_job: str | None
    log_checked: str | None
    flag_since: int | None
    message: str
    stopped_by: str | None

    @property
    def run(self) -> str:
        return self.spec.run

    def as_dict(self) -> dict:
        return {**self.__dict__, "spec": {**self.spec.__dict__}}


@dataclass(frozen=True)
class StepRecord:
    """A checkpoint a watch has seen: its folder, why it is not complete yet, its job and that job's state."""

    step: int
    path: str
    reason: str | None
    job_id: str | None
    job_state: str | None
    finished_at: float | None


def _writing(cache: Path) -> AbstractContextManager[sqlite3.Connection]:
    """The queue's connection, with the watch tables created on first use."""
    return jobs.opened(cache, schema=_SCHEMA)


@contextmanager
def _reading(cache: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection; None when the cache has no watch tables (reading never creates them)."""
    if not jobs.db_path(cache).is_file():
        yield None
        return
    with jobs.opened(cache, read_only=True) as con:
        yield con if con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'watches'").fetchone()[0] else None


def register(
    cache: Path, spec: WatchSpec, submitted_by: str | None, max_per_user: int | None = None
) -> tuple[str, bool]:
    """Start watching `spec.run` (the run's name, True); the same watch already running returns (run, False).
    A run watched from another folder is refused (stop that watch first); a stopped one is restarted.
    `max_per_user` (the per-user job limit) also caps how many runs one user may watch at once."""
    user = submitted_by or jobs.current_user()
    with _writing(cache) as con:
        con.execute("BEGIN IMMEDIATE")
        row = con.execute("SELECT run_dir, base, state FROM watches WHERE run = ?", [spec.run]).fetchone()
        if row is not None and row[2] == "watching":
            con.execute("COMMIT")
            if (row[0], row[1]) == (spec.run_dir, spec.base):
                return spec.run, False
            raise UsageError(
                f"watch of run '{spec.run}'",
                "one watch per run name",
                f"a watch of {row[0]} (base {row[1]}) already",
                f"stop it first (`rlvr unwatch {spec.run}`, or the Jobs page), or pick another --run name",
            )
        if max_per_user:
            (active,) = con.execute(
                "SELECT count(*) FROM watches WHERE submitted_by = ? AND state = 'watching'", [user]
            ).fetchone()
            if active >= max_per_user:
                con.execute("COMMIT")
                raise UsageError(
                    f"user '{user}'", f"at most {max_per_user} watched runs at once (the per-user job limit)",
                    f"{active} already", "stop watching one (`rlvr unwatch RUN`, or the Jobs page)",
                )  # fmt: skip
        con.execute("DELETE FROM watches WHERE run = ?", [spec.run])
        con.execute(
            "INSERT INTO watches (run, run_dir, base, log, interval, settle, options, submitted_by, created_at, "
            "state, next_poll) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'watching', 0)",
            [
                spec.run,
                spec.run_dir,
                spec.base,
                spec.log,
                spec.interval,
                spec.settle,
                json.dumps(spec.options),
                user,
                time.time(),
            ],
        )
        con.execute("COMMIT")
    return spec.run, True


def stop(cache: Path, run: str, user: str | None = None, admins: tuple[str, ...] = ()) -> str:
    """Stop watching `run` (its results and queued analyses stay); returns the watch's state afterwards.
    With `user` (a shared server), only the watch's submitter or one of `admins` may stop it."""
    found = {w.run: w for w in list_watches(cache)}.get(run)
    if found is None:
        raise UsageError(
            f"watch '{run}'", "a watched run from `rlvr watches`", "no such watch", "list them: rlvr watches"
        )
    jobs.check_owner(f"watch '{run}'", "a watch", "stop", found.submitted_by, user, admins)
    with _writing(cache) as con:
        con.execute(
            "UPDATE watches SET state = 'stopped', stopped_by = ?, message = 'stopped' WHERE run = ?",
            [user or jobs.current_user(), run],
        )
    return "stopped"


def list_watches(cache: Path, only_watching: bool = False) -> list[Watch]:
    """Every registered watch (newest first), with how far its steps got; [] when none was ever registered."""
    with _reading(cache) as con:
        if con is None:
            return []
        rows = con.execute(
            "SELECT run, run_dir, base, log, interval, settle, options, submitted_by, created_at, state, last_poll, "
            "next_poll, last_seen_step, log_stamp, log_job, log_checked, flag_since, message, stopped_by "
            "FROM watches" + (" WHERE state = 'watching'" if only_watching else "") + " ORDER BY created_at DESC"
        ).fetchall()
        progress = con.execute(
            "SELECT s.run, s.step, s.job_id, j.state, j.finished_at FROM watch_steps s "
            "LEFT JOIN jobs j ON j.id = s.job_id"
        ).fetchall()
    return [_watch(row, [p for p in progress if p[0] == row[0]]) for row in rows]


def _watch(row: tuple, progress: list[tuple]) -> Watch:
    counts = {"waiting": 0, "queued": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    done = [(p[1], p[4]) for p in progress if p[3] == "done"]
    for _, _, job_id, state, _ in progress:
        key = "waiting" if job_id is None else (state or "failed")
        counts[key] = counts.get(key, 0) + 1
    last = max(done, default=(None, None))
    spec = WatchSpec(
        run=row[0], run_dir=row[1], base=row[2], log=row[3], interval=row[4], settle=row[5], options=json.loads(row[6])
    )
    return Watch(spec, row[9], row[7], row[8], row[10], row[11], row[12], last[0], last[1], counts, *row[13:19])


def step_records(cache: Path, run: str) -> dict[int, StepRecord]:
    """Every step the watch of `run` has seen, with its job's state."""
    with _reading(cache) as con:
        if con is None:
            return {}
        rows = con.execute(
            "SELECT s.step, s.path, s.reason, s.job_id, j.state, j.finished_at FROM watch_steps s "
            "LEFT JOIN jobs j ON j.id = s.job_id WHERE s.run = ? ORDER BY s.step",
            [run],
        ).fetchall()
    return {r[0]: StepRecord(*r) for r in rows}


def record_step(cache: Path, run: str, step: int, path: str, reason: str | None, job_id: str | None) -> None:
    """Note a step seen (`reason`: why it is not complete yet) or queued (`job_id`); a queued step stays queued."""
    with _writing(cache) as con:
        now = time.time()
        con.execute(
            "INSERT INTO watch_steps (run, step, path, reason, job_id, seen_at, queued_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run, step) DO UPDATE SET path = excluded.path, reason = excluded.reason, "
            "job_id = coalesce(watch_steps.job_id, excluded.job_id), "
            "queued_at = coalesce(watch_steps.queued_at, excluded.queued_at)",
            [run, step, path, reason, job_id, now, now if job_id else None],
        )


def update(cache: Path, run: str, **values) -> None:
    """Record what the watcher did for `run` (only the columns it owns; a stopped watch stays stopped)."""
    unknown = set(values) - _UPDATABLE
    if unknown:
        raise ValueError(f"not a watcher column: {sorted(unknown)}")
    with _writing(cache) as con:
        assignments = ", ".join(f"{name} = ?" for name in values)
        con.execute(f"UPDATE watches SET {assignments} WHERE run = ?", [*values.values(), run])


def flag_news(
    flagged_since: int | None, verdict: tuple[str, int | None, int] | None, test_metric: str | None = None
) -> tuple[int | None, str | None]:
    """(the step since which the monitor's flag stands now, the line to say about it or None), given the
    step it stood since before and the monitor's last verdict (`Queries.monitor_latest()`'s entry: the
    flag is the verdict that has a `since`)."""
    since = verdict[1] if verdict is not None else None
    if verdict is not None and since is not None and flagged_since is None:
        test = f"test metric {test_metric}; " if test_metric else ""
        return since, f"monitor: {verdict[0]} since step {since} ({test}see Reward vs test)"
    if since is None and flagged_since is not None:
        return None, f"monitor: the flag raised at step {flagged_since} has cleared"
    return since, None
