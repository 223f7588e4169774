"""The job queue: SQLite in WAL mode in the cache folder (`Cache.jobs_db`), no server needed. Its table and
every statement on it live here, with the rest of what is stored in the cache.

A job is a command line of `rlvr` (`kind` = analyze, compare, demo, logs or predict; `argv` = its arguments, derived
from a typed request by `rlvr_core.cli.requests`, which validates it with the command's own parser).
States: queued -> running -> done | failed | cancelled.

- `submit` returns the id of an identical request (same kind and arguments) that is still queued or
  running instead of adding a second one.
- `claim` hands the oldest queued job to a worker under a lease (`lease_until`); the worker renews it with
  `heartbeat`. A running job whose lease has expired (its worker was killed) is queued again by the next
  `claim`, with `attempt` + 1. Every later write of the old worker is fenced off: `heartbeat` and `finish`
  only act when (worker, attempt) still own the job, so a job finishes exactly once.
- `cancel`: a queued job is cancelled at once; a running one gets `cancel_requested`, which its worker
  sees at the next heartbeat and acts on (it stops the job's process).
- `progress.report` (called by the job's own process, which finds its id in $RLVR_JOB_ID) stores progress
  and a message. The job's output goes to its log file (`Cache.job_log`); `log_tail` reads its end.
Each call opens its own short connection: any number of processes (dashboard, CLI, workers) share it.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import CacheError, UsageError
from .store import Cache

KINDS = ("analyze", "claims", "compare", "demo", "logs", "predict")
STATES = ("queued", "running", "done", "failed", "cancelled")
JOB_ENV, DB_ENV, USER_ENV = "RLVR_JOB_ID", "RLVR_JOB_DB", "RLVR_JOB_USER"
LEASE_SECONDS = 30.0
BUSY_SECONDS = 30.0
"""How long a statement waits for another process's lock on the queue before it is an error."""
MAX_ARGV_BYTES = 16 * 1024
"""The longest command line a job may have (far below the OS's limit on a process's arguments)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, argv TEXT NOT NULL, request_key TEXT NOT NULL,
    state TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', error TEXT,
    submitted_by TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL, worker TEXT,
    attempt INTEGER NOT NULL DEFAULT 0, lease_until REAL, cancel_requested INTEGER NOT NULL DEFAULT 0,
    cwd TEXT, node_ip TEXT, node_id TEXT);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
"""
_ADDED_COLUMNS = (("node_ip", "TEXT"), ("node_id", "TEXT"))
"""Columns added after the first release: added to an older queue file when it is opened for writing."""


@dataclass(frozen=True)
class Job:
    """One row of the queue."""

    id: str
    kind: str
    argv: list[str]
    state: str
    progress: float
    message: str
    error: str | None
    submitted_by: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    worker: str | None
    attempt: int
    cancel_requested: bool
    cwd: str | None = None
    """The folder the job was submitted from (relative paths in `argv` are relative to it)."""
    node_ip: str | None = None
    """The IP address of the Ray node that ran the job (None: a local worker, or not started)."""
    node_id: str | None = None
    """That Ray node's id."""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def db_path(cache: Path) -> Path:
    return Cache(cache).jobs_db


def connect(cache: Path, read_only: bool = False, schema: str = "") -> sqlite3.Connection:
    """A short connection to the queue (created on first use, unless `read_only`; `schema`: more tables to
    create in it). A file missing a table or column is set up under `Cache.jobs_lock`, its tables in one
    transaction (one already set up takes no lock), so processes that start together on a new cache (the
    workers and the watcher of `rlvr serve`) never meet a half-made queue. A file that is not a SQLite
    database, or one held locked for over `BUSY_SECONDS`, is one clear error. Use `opened`, which also
    closes it and turns a lock held too long into that error."""
    path = db_path(cache)
    try:
        if read_only:  # a queue another process is still creating reads as empty (callers check the tables)
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_SECONDS, isolation_level=None)
            con.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        target = Cache(cache)
        target.ensure()
        con = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        if not _set_up(con, schema):
            with open(target.jobs_lock, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed: one process sets the file up at a time
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}{schema}COMMIT;")
                present = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
                for column, kind in _ADDED_COLUMNS:
                    if column not in present:
                        con.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        return con
    except sqlite3.DatabaseError as exc:
        raise _queue_error(path, exc) from None


def _set_up(con: sqlite3.Connection, schema: str) -> bool:
    """Whether the file already has every table of `_SCHEMA` + `schema` and every column of `jobs`."""
    tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _SCHEMA + schema))
    if not tables <= {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
        return False
    present = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
    return all(column in present for column, _ in _ADDED_COLUMNS)


@contextmanager
def opened(cache: Path, read_only: bool = False, schema: str = "") -> Iterator[sqlite3.Connection]:
    """`connect`, closed when the block ends; a lock another process holds too long is one clear error."""
    con = connect(cache, read_only, schema)
    try:
        yield con
    except sqlite3.OperationalError as exc:
        raise _queue_error(db_path(cache), exc) from None
    finally:
        con.close()


def busy(exc: sqlite3.DatabaseError) -> bool:
    """The error of a lock another process held longer than `BUSY_SECONDS` (not a damaged file)."""
    return "locked" in str(exc) or "busy" in str(exc)


def _queue_error(path: Path, exc: sqlite3.DatabaseError) -> CacheError:
    if busy(exc):
        return CacheError(
            str(path),
            f"the job queue, free within {BUSY_SECONDS:.0f} s",
            f"held locked by another process for longer ({exc})",
            f"try again; if it stays locked, `fuser {path}` names the process holding it. The file is not "
            "damaged: do not move or delete it",
        )
    return CacheError(
        str(path),
        "the job queue (a SQLite database)",
        f"a file SQLite cannot use ({exc})",
        f"stop the workers, move it aside (mv {path} {path}.corrupt) and start again: the queue "
        "starts empty (queued jobs are lost, results in the cache are not)",
    )


def submit(
    cache: Path,
    kind: str,
    argv: list[str],
    submitted_by: str | None = None,
    cwd: str | None = None,
    max_per_user: int | None = None,
) -> tuple[str, bool]:
    """(job id, True if newly queued); an identical queued or running request returns its id, False.
    A command line longer than `MAX_ARGV_BYTES`, or a user who already has `max_per_user` jobs queued or
    running, is refused."""
    if kind not in KINDS:
        raise UsageError(
            f"job kind '{kind}'", f"one of {', '.join(KINDS)}", repr(kind), f"rlvr submit {'|'.join(KINDS)} ..."
        )
    size = sum(len(a.encode()) + 1 for a in argv)
    if size > MAX_ARGV_BYTES:
        raise UsageError(
            f"rlvr {kind}",
            f"arguments of at most {MAX_ARGV_BYTES} bytes",
            f"{size} bytes",
            "shorten the fields (paths, names, patterns)",
        )
    cwd = cwd or os.getcwd()
    key = json.dumps([kind, argv, cwd])
    user = submitted_by or current_user()
    with opened(cache) as con:
        con.execute("BEGIN IMMEDIATE")
        row = con.execute(
            "SELECT id FROM jobs WHERE request_key = ? AND state IN ('queued', 'running')", [key]
        ).fetchone()
        if row:
            con.execute("COMMIT")
            return row[0], False
        if max_per_user is not None:
            (waiting,) = con.execute(
                "SELECT count(*) FROM jobs WHERE submitted_by = ? AND state IN ('queued', 'running')", [user]
            ).fetchone()
            if waiting >= max_per_user:
                con.execute("COMMIT")
                raise UsageError(
                    f"user '{user}'",
                    f"at most {max_per_user} jobs queued or running",
                    f"{waiting} already",
                    "wait for them to finish, or cancel some on the Jobs page",
                )
        ident = uuid.uuid4().hex[:12]
        con.execute(
            "INSERT INTO jobs (id, kind, argv, request_key, state, submitted_by, created_at, cwd) "
            "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            [ident, kind, json.dumps(argv), key, user, time.time(), cwd],
        )
        con.execute("COMMIT")
    return ident, True


def claim(cache: Path, worker: str, lease: float = LEASE_SECONDS) -> Job | None:
    """Requeue jobs whose lease expired, then take the oldest queued job (or None)."""
    now = time.time()
    with opened(cache) as con:
        con.execute("BEGIN IMMEDIATE")
        con.execute(
            "UPDATE jobs SET state = 'queued', worker = NULL, message = 'requeued: its worker stopped "
            "renewing the lease' WHERE state = 'running' AND lease_until < ?",
            [now],
        )
        con.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE state = 'queued' AND cancel_requested = 1",
            [now],
        )
        row = con.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1").fetchone()
        if row is None:
            con.execute("COMMIT")
            return None
        con.execute(
            "UPDATE jobs SET state = 'running', worker = ?, attempt = attempt + 1, lease_until = ?, "
            "started_at = ?, progress = 0, error = NULL WHERE id = ?",
            [worker, now + lease, now, row[0]],
        )
        con.execute("COMMIT")
    return get(cache, row[0])


def heartbeat(cache: Path, job: Job, lease: float = LEASE_SECONDS) -> str:
    """Renew the lease. Returns `ok`, `cancel` (cancellation requested) or `lost` (no longer ours)."""
    with opened(cache) as con:
        cur = con.execute(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND worker = ? AND attempt = ? AND state = 'running'",
            [time.time() + lease, job.id, job.worker, job.attempt],
        )
        if cur.rowcount == 0:
            return "lost"
        flag = con.execute("SELECT cancel_requested FROM jobs WHERE id = ?", [job.id]).fetchone()[0]
    return "cancel" if flag else "ok"


def finish(cache: Path, job: Job, state: str, error: str | None = None, message: str | None = None) -> bool:
    """Record the outcome; False (and nothing written) when the job is no longer this worker's."""
    if state not in ("done", "failed", "cancelled"):
        raise ValueError(state)
    with opened(cache) as con:
        cur = con.execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ?, lease_until = NULL, "
            "progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END, message = coalesce(?, message) "
            "WHERE id = ? AND worker = ? AND attempt = ? AND state = 'running'",
            [state, error, time.time(), state, message, job.id, job.worker, job.attempt],
        )
        return cur.rowcount == 1


def release(cache: Path, job: Job, message: str = "requeued: its worker was stopped") -> bool:
    """Put a running job back in the queue (its worker is stopping); False when it is no longer ours."""
    with opened(cache) as con:
        cur = con.execute(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL, message = ? "
            "WHERE id = ? AND worker = ? AND attempt = ? AND state = 'running'",
            [message, job.id, job.worker, job.attempt],
        )
        return cur.rowcount == 1


def cancel(cache: Path, ident: str, user: str | None = None, admins: tuple[str, ...] = ()) -> str:
    """Cancel a job: returns its state afterwards (`cancelled` when it was queued; `running` with the
    request recorded when it runs; unchanged when it had already ended). With `user` (a shared server),
    only the job's submitter or one of `admins` may cancel it."""
    job = get(cache, ident)
    if job is None:
        raise UsageError(f"job '{ident}'", "a job id from `rlvr jobs`", "no such job", "list the jobs with `rlvr jobs`")
    check_owner(f"job '{ident}'", "a job", "cancel", job.submitted_by, user, admins)
    with opened(cache) as con:
        con.execute("BEGIN IMMEDIATE")
        con.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'queued'",
            [time.time(), ident],
        )
        con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'", [ident])
        row = con.execute("SELECT state FROM jobs WHERE id = ?", [ident]).fetchone()
        con.execute("COMMIT")
    if row is None:
        raise UsageError(f"job '{ident}'", "a job id from `rlvr jobs`", "no such job", "list the jobs with `rlvr jobs`")
    return row[0]


def check_owner(
    subject: str, what: str, action: str, owner: str | None, user: str | None, admins: tuple[str, ...]
) -> None:
    """On a shared server (`user` given): only the submitter (`owner`) or one of `admins` may `action` it."""
    if user is not None and user != owner and user not in admins:
        raise UsageError(
            subject,
            f"{what} of yours ({user}) to {action}",
            f"{what} of {owner}",
            "ask its submitter, or an admin (`admins` in the server's settings)",
        )


def get(cache: Path, ident: str) -> Job | None:
    rows = list_jobs(cache, ident=ident)
    return rows[0] if rows else None


def set_node(cache: Path, ident: str, ip: str | None, node_id: str | None) -> None:
    """Record the Ray node running job `ident` (called on that node, as the job starts)."""
    with opened(cache) as con:
        con.execute("UPDATE jobs SET node_ip = ?, node_id = ? WHERE id = ?", [ip, node_id, ident])


def list_jobs(cache: Path, ident: str | None = None) -> list[Job]:
    """The jobs (newest first), or one job; reading never creates the queue (a read-only cache has none)."""
    if not db_path(cache).is_file():
        return []
    with opened(cache, read_only=True) as con:
        present = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
        if not present:  # the file is there and its first writer is still creating the table
            return []
        node = ", ".join(c if c in present else f"NULL AS {c}" for c, _ in _ADDED_COLUMNS)
        query = (
            "SELECT id, kind, argv, state, progress, message, error, submitted_by, created_at, started_at, "
            f"finished_at, worker, attempt, cancel_requested, cwd, {node} FROM jobs"
        )
        rows = con.execute(
            query + (" WHERE id = ?" if ident else " ORDER BY created_at DESC, id"), [ident] if ident else []
        ).fetchall()
    return [
        Job(
            r[0],
            r[1],
            json.loads(r[2]),
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
            bool(r[13]),
            r[14],
            r[15],
            r[16],
        )
        for r in rows
    ]


def log_path(cache: Path, ident: str) -> Path:
    return Cache(cache).job_log(ident)


def log_tail(cache: Path, ident: str, max_bytes: int = 8000) -> str:
    path = log_path(cache, ident)
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - max_bytes))
        return handle.read().decode("utf-8", errors="replace")


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return os.environ.get("USER", "unknown")
