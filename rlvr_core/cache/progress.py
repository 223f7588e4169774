"""A job's progress, written from inside the job's own process (which finds its id and the queue's file in
$RLVR_JOB_ID and $RLVR_JOB_DB, set by the worker that started it; `queue` holds the rest of the queue).

Progress is best effort: a write that finds the queue locked for longer than `queue.BUSY_SECONDS` is
skipped (the next one carries the newer message), never the end of the job.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing

from . import queue


def report(progress: float | None, message: str) -> None:
    """Store this job's progress (0-1, or None to keep it) and message. A no-op outside a job."""
    ident, db = os.environ.get(queue.JOB_ENV), os.environ.get(queue.DB_ENV)
    if not ident or not db:
        return
    try:
        with closing(sqlite3.connect(db, timeout=queue.BUSY_SECONDS, isolation_level=None)) as con:
            con.execute(f"PRAGMA busy_timeout={int(queue.BUSY_SECONDS * 1000)}")
            if progress is None:
                con.execute("UPDATE jobs SET message = ? WHERE id = ?", [message[-300:], ident])
            else:
                con.execute(
                    "UPDATE jobs SET progress = ?, message = ? WHERE id = ?",
                    [max(0.0, min(1.0, progress)), message[-300:], ident],
                )
    except sqlite3.OperationalError as exc:
        if not queue.busy(exc):
            raise


class Reporter:
    """progress(fraction or None, message) for a command: stores it in the queue when the command runs
    as a job (at most twice a second, and always the last call before `close`), else does nothing."""

    def __init__(self, interval: float = 0.5) -> None:
        self.active = bool(os.environ.get(queue.JOB_ENV))
        self.interval, self._last = interval, 0.0
        self._pending: tuple[float | None, str] | None = None

    def __call__(self, fraction: float | None, message: str) -> None:
        if not self.active:
            return
        self._pending = (fraction, message)
        if time.monotonic() - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self._pending is not None:
            report(*self._pending)
            self._pending, self._last = None, time.monotonic()
