"""`rlvr watch`: follow a training run while it writes checkpoints; analyse each one once it is complete,
and ingest the training log again whenever it grows.

Every `interval` seconds: list the run folder's checkpoint folders (the layouts of `readers.layout`);
each step not yet handled is analysed (`pipelines.analyze`, the same analysis as `rlvr analyze`, one step
at a time, cached steps skipped) as soon as `readers.completeness` calls it complete: every shard there,
every file as long as its header declares, nothing changed for `settle` seconds, verl's
`latest_checkpointed_iteration.txt` honoured. A half-written checkpoint is only waited for, never an
error. The log (`log`), when given, is ingested again (`pipelines.logs`, which also runs the
implicit-reward-overfitting monitor) when its size or modification time changed and it has settled; a log
that does not parse yet (a line being written) is retried at the next poll; when the monitor's flag first
rises (or clears) the watch says so in one line (under `rlvr serve`, the worker's log). `should_stop` is asked
between steps and during the sleep, so Ctrl-C or SIGTERM stop the watch cleanly between steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RlvrError
from ..readers import completeness
from ..readers.layout import StepCheckpoint

Say = Callable[[str], None]
MAX_TRIES = 3
"""Analyses of one step before a watch gives up on it: a read error can be transient (a folder rewritten
under the reader), a NaN or a changed shape is not; three tries tell them apart at a bounded cost."""


@dataclass(kw_only=True)
class WatchConfig:
    """What `rlvr watch` follows. Fields mirror its flags."""

    run_dir: Path
    """The run folder the trainer writes checkpoints into."""
    base: Path
    """The base model folder."""
    run: str
    """The run's name in the cache."""
    cache: Path = Path("cache")
    """The cache folder."""
    log: Path | None = None
    """The training log (file or folder) to ingest again as it grows; None: no log."""
    interval: float = 30.0
    """Seconds between two looks at the run folder."""
    settle: float = 30.0
    """Seconds a checkpoint folder (or the log) must stay unchanged before it is read."""
    device: str = "auto"
    """Where the decompositions run (as `rlvr analyze --device`)."""
    fits: bool = True
    """Fit power laws to each spectrum (as `rlvr analyze`, unless --no-fits)."""
    modules: str | None = None
    """Regex on tensor names (as `rlvr analyze --modules`)."""
    polls: int | None = None
    """Stop after this many looks (None: until stopped)."""


@dataclass
class WatchState:
    """What a watch has done so far."""

    analysed: dict[int, float] = field(default_factory=dict)
    """step -> seconds its analysis took (0 when it was cached already, -1 when it failed)."""
    waiting: dict[int, str] = field(default_factory=dict)
    """step -> why it is not complete yet (as last seen)."""
    log_stamp: str | None = None
    """The log's "size:mtime_ns" when last ingested (`readers.completeness.log_changed`)."""
    polls: int = 0
    """Looks at the run folder so far."""
    flag_since: int | None = None
    """The step since which the monitor's flag stands (None: not flagged)."""
    failures: dict[int, int] = field(default_factory=dict)
    """step -> analyses of it that failed so far (retried up to `MAX_TRIES` in all)."""
    said: set[str] = field(default_factory=set)
    """Problems of the run folder reported already (a vanished folder, a broken link): each said once."""


def watch(config: WatchConfig, should_stop: Callable[[], bool], say: Say) -> WatchState:
    """Poll until stopped (or `config.polls` looks); returns what was done."""
    state = WatchState()
    while not should_stop():
        poll(config, state, should_stop, say)
        if config.polls is not None and state.polls >= config.polls:
            break
        deadline = time.monotonic() + config.interval
        while time.monotonic() < deadline and not should_stop():
            time.sleep(min(0.2, config.interval))
    return state


def poll(config: WatchConfig, state: WatchState, should_stop: Callable[[], bool], say: Say) -> None:
    """One look: analyse every new complete checkpoint, then the log if it changed."""
    state.polls += 1
    _report_folder(config, state, say)
    ready, waiting = completeness.scan(config.run_dir, state.analysed, config.settle)
    for step, why in waiting.items():
        if state.waiting.get(step) != why:
            say(f"step {step}: not complete yet: {why}")
    state.waiting = waiting
    for checkpoint in ready:
        try:
            state.analysed[checkpoint.step] = _analyse(config, checkpoint, say)
        except (RlvrError, OSError) as exc:  # transient (rewritten mid-read) or bad (NaN): tried MAX_TRIES times
            tries = state.failures[checkpoint.step] = state.failures.get(checkpoint.step, 0) + 1
            last = tries >= MAX_TRIES
            if last:
                state.analysed[checkpoint.step] = -1.0
            then = "given up" if last else "tried again at the next look"
            say(f"step {checkpoint.step}: error (try {tries} of {MAX_TRIES}, {then}): {str(exc).splitlines()[0]}")
        if should_stop():
            return
    if config.log is not None:
        _ingest(config, state, say)


def _report_folder(config: WatchConfig, state: WatchState, say: Say) -> None:
    """Say once that the run folder vanished (and once that it is back), and once per checkpoint-named link
    that leads nowhere."""
    gone = f"run folder {config.run_dir} is gone (moved or deleted): watching for it to come back"
    if not config.run_dir.is_dir():
        if gone not in state.said:
            state.said.add(gone)
            say(gone)
        return
    if gone in state.said:
        state.said.discard(gone)
        say(f"run folder {config.run_dir} is back")
    for name, why in completeness.broken_links(config.run_dir).items():
        line = f"{config.run_dir / name}: {why}; not a checkpoint (fix or remove the link)"
        if line not in state.said:
            state.said.add(line)
            say(line)


def _analyse(config: WatchConfig, checkpoint: StepCheckpoint, say: Say) -> float:
    from .analyze import AnalyzeConfig, analyze_run

    summary = analyze_run(
        AnalyzeConfig(
            base=config.base,
            checkpoints=[checkpoint],
            run=config.run,
            cache=config.cache,
            device=config.device,
            fits=config.fits,
            modules=config.modules,
        )
    )
    if checkpoint.step in summary.analyzed:
        seconds = summary.seconds_per_step.get(checkpoint.step, summary.seconds)
        say(f"step {checkpoint.step}: analysed in {seconds:.1f} s ({summary.tensors} tensors) into {config.cache}")
        return seconds
    say(f"step {checkpoint.step}: cached already")
    return 0.0


def _ingest(config: WatchConfig, state: WatchState, say: Say) -> None:
    from .logs import ingest_log

    assert config.log is not None
    changed = completeness.log_changed(config.log, state.log_stamp, config.settle)
    if changed is None:
        return
    file, stamp = changed
    try:
        _, summary = ingest_log(config.cache, config.run, config.log)
    except RlvrError as exc:
        say(f"log {file}: not readable yet, retried at the next look ({str(exc).splitlines()[0][:160]})")
        return
    state.log_stamp = stamp
    say(f"log {file}: ingested (reward {summary['reward_metric']}, test {summary['test_metric']})")
    _report_flag(config, state, summary["test_metric"], say)


def _report_flag(config: WatchConfig, state: WatchState, test_metric: str | None, say: Say) -> None:
    """One line when the implicit-reward-overfitting flag first rises (and when it clears again)."""
    from ..cache import Cache
    from ..cache.watches import flag_news

    verdict = Cache(config.cache).queries().monitor_latest().get(config.run)
    state.flag_since, news = flag_news(state.flag_since, verdict, test_metric)
    if news:
        say(news)
