"""Typed job requests: what a page or `rlvr submit` asks a worker to run, checked where it is submitted.

A job is an `rlvr` command line. A request names its command (`kind`) and holds one field per flag of that
command (the field is the flag's argparse `dest`: `max_new_tokens` is `--max-new-tokens`); `argv()` derives
the command line from it, in this one place, and `submit` checks that line with the command's own parser
before the job is queued, so a request the command would reject is refused at once with the usual
one-line error, never later inside a worker. `from_argv` goes the other way (for `rlvr submit KIND ARGS`).

    submit(cache, AnalyzeRequest(run_dir="/models/run", base="/models/base", quiet=True), submitted_by="ann")

May import: `rlvr_core.cli` (its parsers), `rlvr_core.cache` (queue, watches), `rlvr_core.readers.hub` (is it a Hub
id?), `rlvr_core.errors`. Never torch.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ..cache import check_run_name, watches
from ..cache import queue as jobs
from ..cache.watches import WatchSpec
from ..errors import UsageError
from ..readers.hub import is_hub_id

_POSITIONAL = {"positional": True}
MAX_FIELD = 4096
"""The longest text a request field may hold (a path, a name, a pattern)."""


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """Base of the typed requests: one field per flag of the command `kind`."""

    kind: ClassVar[str] = ""

    def argv(self) -> list[str]:
        """The command's arguments: positionals first, then each flag whose value is not its default."""
        positional, flags = [], []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("positional"):
                if value is not None:
                    positional.append(str(value))
                continue
            if value is None or value is False or value == f.default or value == ():
                continue
            flag = "--" + f.name.replace("_", "-")
            if value is True:
                flags.append(flag)
            elif isinstance(value, tuple):
                for item in value:
                    flags += [flag, str(item)]
            else:
                flags += [flag, str(value)]
        return positional + flags


@dataclass(frozen=True, kw_only=True)
class AnalyzeRequest(JobRequest):
    """`rlvr analyze`: analyse a run's checkpoints into the cache."""

    kind: ClassVar[str] = "analyze"
    run_dir: str | None = field(default=None, metadata=_POSITIONAL)
    base: str
    run: str | None = None
    pair: str | None = None
    step: int = 1
    steps: str | None = None
    checkpoint: tuple[str, ...] = ()
    modules: str | None = None
    topk: int = 8
    device: str = "auto"
    triplets: str = "auto"
    engine: str = "auto"
    workers: int | None = None
    cache: str | None = None
    config: str | None = None
    include_embeddings: bool = False
    no_base: bool = False
    no_fits: bool = False
    no_geometry: bool = False
    no_alignment: bool = False
    force: bool = False
    allow_nonfinite: bool = False
    quiet: bool = False


@dataclass(frozen=True, kw_only=True)
class LogsRequest(JobRequest):
    """`rlvr logs`: ingest a training log."""

    kind: ClassVar[str] = "logs"
    path: str = field(metadata=_POSITIONAL)
    run: str
    reward: str | None = None
    test: str | None = None
    cache: str | None = None
    config: str | None = None


@dataclass(frozen=True, kw_only=True)
class DemoRequest(JobRequest):
    """`rlvr demo`: build the built-in demo."""

    kind: ClassVar[str] = "demo"
    model: str = "tiny"
    out: str | None = None
    cache: str | None = None
    config: str | None = None
    quick: bool = False
    steps: int | None = None
    seeds: str | None = None
    sweep: str = "10,25,50"
    seed: int | None = None
    threads: int = 2
    substitute_every: int | None = None
    no_analyze: bool = False
    if_missing: bool = False


@dataclass(frozen=True, kw_only=True)
class CompareRequest(JobRequest):
    """`rlvr compare`: evaluate base, full and rank-k variants of a run's steps."""

    kind: ClassVar[str] = "compare"
    run_dir: str = field(metadata=_POSITIONAL)
    base: str
    steps: str | None = None
    ranks: str = "1"
    mode: str = "truncated"
    alpha: float = 1.0
    keep: str = "base"
    modules: str | None = None
    dataset: str
    run: str | None = None
    predicted: tuple[str, ...] = ()
    data_dir: str | None = None
    limit: int | None = None
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    cache: str | None = None
    config: str | None = None


@dataclass(frozen=True, kw_only=True)
class PredictRequest(JobRequest):
    """`rlvr predict`: extrapolate a run's updates from the steps <= from_step to to_step."""

    kind: ClassVar[str] = "predict"
    run: str = field(metadata=_POSITIONAL)
    from_step: int
    to_step: int
    rank: int = 1
    base: str | None = None
    out: str | None = None
    modules: str | None = None
    cache: str | None = None
    config: str | None = None


@dataclass(frozen=True, kw_only=True)
class ClaimsRequest(JobRequest):
    """`rlvr claims`: the claims board of a run (and the cross-run rows of `compare`)."""

    kind: ClassVar[str] = "claims"
    run: str = field(metadata=_POSITIONAL)
    compare: tuple[str, ...] = ()
    json: bool = False
    cache: str | None = None
    config: str | None = None


@dataclass(frozen=True, kw_only=True)
class WatchRequest(JobRequest):
    """`rlvr watch`, registered: the server follows the run (`cache.watches`) and queues an analysis job
    per complete checkpoint and an ingestion job whenever the log grows. Not a job itself: `submit`
    registers it (a restart of `rlvr serve` resumes it), `rlvr unwatch RUN` or the Jobs page stops it."""

    kind: ClassVar[str] = "watch"
    run_dir: str = field(metadata=_POSITIONAL)
    base: str
    run: str | None = None
    log: str | None = None
    interval: float = 30.0
    settle: float = 30.0
    device: str = "auto"
    modules: str | None = None
    no_fits: bool = False
    polls: int | None = None
    cache: str | None = None
    config: str | None = None

    def spec(self, cwd: str) -> WatchSpec:
        """What the watcher follows: the paths made absolute (relative ones are relative to `cwd`)."""
        if self.polls is not None:
            raise UsageError(
                "rlvr submit watch --polls", "no --polls", str(self.polls), "a registered watch runs until stopped"
            )
        here = Path(cwd)
        run_dir = here / self.run_dir
        return WatchSpec(
            run=self.run or run_dir.resolve().name,
            run_dir=str(run_dir.resolve()),
            base=self.base if is_hub_id(self.base) else str((here / self.base).resolve()),
            log=str((here / self.log).resolve()) if self.log else None,
            interval=self.interval,
            settle=self.settle,
            options={"device": self.device, "modules": self.modules, "fits": not self.no_fits},
        )


REQUESTS: dict[str, type[JobRequest]] = {
    cls.kind: cls
    for cls in (AnalyzeRequest, ClaimsRequest, CompareRequest, DemoRequest, LogsRequest, PredictRequest, WatchRequest)
}
"""The request type of each kind `rlvr submit` takes: the job kinds (`cache.queue.KINDS`) and `watch`."""


def parse(kind: str, argv: list[str]) -> argparse.Namespace:
    """`argv` parsed by the `kind` command's own parser; a rejection is a UsageError with argparse's words."""
    from . import build_parser

    _, parsers = build_parser()
    if kind not in REQUESTS:
        raise UsageError(
            f"job kind '{kind}'", f"one of {', '.join(REQUESTS)}", repr(kind), f"rlvr submit {'|'.join(REQUESTS)} ..."
        )
    parser, errors = parsers[kind], io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(argv)
    except SystemExit:
        said = errors.getvalue().strip().splitlines()
        reason = said[-1].split(": error: ", 1)[-1] if said else "arguments it does not accept"
        raise UsageError(
            f"rlvr {kind} {' '.join(argv)}".strip(),
            f"arguments `rlvr {kind}` accepts",
            reason,
            f"see `rlvr {kind} --help`",
        ) from None


def from_argv(kind: str, argv: list[str]) -> JobRequest:
    """The typed request of an `rlvr KIND ARGS...` command line (checked by the command's parser)."""
    namespace = parse(kind, argv)
    cls = REQUESTS[kind]
    values: dict[str, Any] = {}
    for f in fields(cls):
        value = getattr(namespace, f.name)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def submit(
    cache: Path,
    request: JobRequest,
    submitted_by: str | None = None,
    cwd: str | None = None,
    max_per_user: int | None = None,
) -> tuple[str, bool]:
    """Check `request` (each text field at most `MAX_FIELD` characters, then the command's own parser) and
    queue it: (job id, True if newly queued). `max_per_user`: the submitter's limit of waiting jobs."""
    for f in fields(request):
        value = getattr(request, f.name)
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and len(text) > MAX_FIELD:
                raise UsageError(
                    f"{request.kind} {f.name}",
                    f"at most {MAX_FIELD} characters",
                    f"{len(text)} characters",
                    "shorten it",
                )
    argv = request.argv()
    parse(request.kind, argv)
    if isinstance(request, WatchRequest):  # registered, not queued: (the run's name, True if newly watched)
        spec = request.spec(cwd or os.getcwd())
        check_run_name(spec.run)
        return watches.register(cache, spec, submitted_by, max_per_user or None)
    return jobs.submit(cache, request.kind, argv, submitted_by, cwd, max_per_user or None)
