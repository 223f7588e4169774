"""`rlvr watcher`: follows every registered watch (`cache.watches`) and turns what it sees into jobs.

`rlvr serve` runs one (restarted like a worker when it exits). Once a second it takes each watch whose
next look is due and, in that look (`look`):
1. lists the run folder's checkpoints (`readers.completeness.scan`); a step not complete yet is noted
   with why (the Jobs page shows it), never an error;
2. queues one `rlvr analyze --checkpoint STEP=PATH` job for the oldest complete step not queued before,
   once the run's previous analysis job has ended (one analysis of a run at a time, so each job's
   run-level alignment sees every earlier step); the step's job id is stored, so no restart ever queues
   a step twice;
3. queues `rlvr logs` when the log grew and has settled; when that job is done, compares the monitor's
   verdict with the last one and prints one line to the server log when the implicit-reward-overfitting
   flag first rises (or clears).
The workers run the jobs like any other. Everything the watcher knows is in the queue's database, so it
can be stopped and started at any time: `rlvr serve`'s restart resumes every watch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..cache import Cache, watches
from ..cache import queue as jobs
from ..errors import RlvrError
from ..readers import completeness

Say = Callable[[str], None]
ENDED = ("done", "failed", "cancelled")


def run_watcher(
    cache: Path, should_stop: Callable[[], bool], say: Say, tick: float = 1.0, max_per_user: int | None = None
) -> int:
    """Look at every due watch until `should_stop()`; returns how many looks were made. The jobs a watch
    queues count against its submitter's `max_per_user` like any other: at the limit, the step waits."""
    looks = 0
    while not should_stop():
        for watch in watches.list_watches(cache, only_watching=True):
            if watch.next_poll <= time.time() and not should_stop():
                try:
                    look(cache, watch, say, max_per_user)
                except RlvrError as exc:  # e.g. the queue refused a job: said, and tried again at the next look
                    say(f"run {watch.run}: {str(exc).splitlines()[0]}")
                    watches.update(cache, watch.run, next_poll=time.time() + watch.spec.interval, message=str(exc))
                looks += 1
        deadline = time.monotonic() + tick
        while time.monotonic() < deadline and not should_stop():
            time.sleep(min(0.2, tick))
    return looks


def look(cache: Path, watch: watches.Watch, say: Say, max_per_user: int | None = None) -> None:
    """One look at one watched run (see the module docstring)."""
    spec, now = watch.spec, time.time()
    records = watches.step_records(cache, spec.run)
    queued = {step for step, r in records.items() if r.job_id}
    ready, waiting = completeness.scan(Path(spec.run_dir), queued, spec.settle)
    for step, why in waiting.items():
        if step not in records or records[step].reason != why:
            watches.record_step(cache, spec.run, step, "", why, None)
    busy = any(r.job_id and r.job_state not in ENDED for r in records.values())
    message = f"waiting for step {min(waiting)}: {waiting[min(waiting)]}" if waiting else "up to date"
    if not Path(spec.run_dir).is_dir():  # the Jobs page shows it in the watch's row
        message = f"run folder {spec.run_dir} is gone (moved or deleted): watching for it to come back"
    elif broken := completeness.broken_links(Path(spec.run_dir)):
        message += "; " + "; ".join(f"{name}: {why}" for name, why in sorted(broken.items()))
    if ready and not busy:
        checkpoint = ready[0]
        argv = analyze_argv(spec, checkpoint.step, checkpoint.path)
        ident, _ = jobs.submit(cache, "analyze", argv, watch.submitted_by, max_per_user=max_per_user or None)
        watches.record_step(cache, spec.run, checkpoint.step, str(checkpoint.path), None, ident)
        say(f"run {spec.run}: step {checkpoint.step} complete: analysis queued (job {ident})")
        message = f"step {checkpoint.step}: analysis queued (job {ident})"
    elif ready:
        message = f"step {ready[0].step} complete: queued once the running analysis ends"
    seen = [*records, *waiting, *(c.step for c in ready)]
    values: dict = {"last_poll": now, "next_poll": now + spec.interval, "message": message}
    if seen:
        values["last_seen_step"] = max(seen)
    values.update(_log(cache, watch, say, max_per_user))
    watches.update(cache, spec.run, **values)


def analyze_argv(spec: watches.WatchSpec, step: int, path: Path | str) -> list[str]:
    """The `rlvr analyze` command line of one watched step (the watch's analysis options)."""
    argv = ["--checkpoint", f"{step}={path}", "--base", spec.base, "--run", spec.run, "--quiet"]
    options = spec.options
    if options.get("device", "auto") != "auto":
        argv += ["--device", str(options["device"])]
    if options.get("modules"):
        argv += ["--modules", str(options["modules"])]
    if not options.get("fits", True):
        argv.append("--no-fits")
    return argv


def _log(cache: Path, watch: watches.Watch, say: Say, max_per_user: int | None) -> dict:
    """The log's part of a look: queue its ingestion when it changed; report the monitor after one is done."""
    spec, values = watch.spec, dict[str, object]()
    if watch.log_job and watch.log_checked != watch.log_job:
        job = jobs.get(cache, watch.log_job)
        if job is not None and job.state in ENDED:
            values["log_checked"] = watch.log_job
            if job.state == "done":
                verdict = Cache(cache).queries().monitor_latest().get(spec.run)
                since, news = watches.flag_news(watch.flag_since, verdict)
                values["flag_since"] = since
                if news:
                    say(f"run {spec.run}: {news}")
    if spec.log is None:
        return values
    changed = completeness.log_changed(Path(spec.log), watch.log_stamp, spec.settle)
    if changed is not None:
        file, stamp = changed
        argv = [str(file), "--run", spec.run]
        ident, _ = jobs.submit(cache, "logs", argv, watch.submitted_by, max_per_user=max_per_user or None)
        values.update(log_stamp=stamp, log_job=ident)
        say(f"run {spec.run}: log {file} changed: ingestion queued (job {ident})")
    return values


def say_to_stderr(message: str) -> None:
    print(f"watcher: [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
