"""The `rlvr` command line (also `python -m rlvr_core`): one module per group of commands, each with
`register(subparsers) -> {command: parser}`.

    rlvr analyze | logs | runs ...                 (cli.analyze)
    rlvr watch | watches | unwatch | watcher ...   (cli.watch)
    rlvr demo ...                                  (cli.demo)
    rlvr substitute | evaluate | compare ...       (cli.evaluate)
    rlvr predict | correlate ...                   (cli.predict)
    rlvr report | figure ...                       (cli.report)
    rlvr submit | jobs | cancel | worker ...       (cli.jobs; typed job requests in cli.requests)
    rlvr serve ...                                 (cli.serve)

Every command takes `--config FILE` (settings; see `system.settings`) and, where it uses the cache,
`--cache DIR`. Every user error is an `RlvrError`: printed as one line `error: ...` on stderr, exit
status 2. Heavy imports (torch) happen inside the commands that need them: building the parser imports
none, so the dashboard can check job requests against it.

May import: every layer below (`service`, `pipelines`, `demo`, `cache`, `readers`, `math`, `system`).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys

from ..cache import Cache
from ..errors import RlvrError, UsageError
from ..system import dataroots, extras, sharing
from . import analyze, claims, common, demo, evaluate, jobs, predict, report, serve, watch

COMMAND_GROUPS = (analyze, watch, claims, demo, evaluate, predict, report, jobs, serve)
"""The modules that register commands, in the order `rlvr --help` lists them."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The `rlvr` parser and each command's own subparser, by command name."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="rlvr", description="RLVR Lens: what RL did to the weights.")
    parser.add_argument("--version", action="version", version=f"rlvr-lens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, argparse.ArgumentParser] = {}
    for group in COMMAND_GROUPS:
        commands.update(group.register(sub))
    return parser, commands


READS_USERS_FILES = frozenset({"analyze", "watch", "logs", "substitute", "evaluate", "compare", "predict"})
"""Commands that open users' files: they check every file against the data roots (`system.dataroots`)."""
WRITES = frozenset(
    {"analyze", "watch", "logs", "demo", "substitute", "evaluate", "compare", "predict", "cancel", "worker"}
    | {"unwatch", "watcher", "correlate"}
)
"""Commands that write (the cache, the queue or an output folder): refused in read-only mode."""
NEEDS_EXTRA = {"serve": "dashboard", "report": "report", "figure": "report", "demo": "eval", "substitute": "eval"}
NEEDS_EXTRA |= {"evaluate": "eval", "compare": "eval"}
"""Commands that need an optional part of the package (`system.extras`): checked before the command starts."""


def main(argv: list[str] | None = None) -> int:
    sharing.no_spin_wait()  # before any command loads torch; inherited by every process it starts
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get("RLVR_JOB_ID"):  # running as a queued job: SIGTERM (cancel) unwinds like Ctrl-C
        signal.signal(signal.SIGTERM, jobs.interrupt)
    try:
        _apply_settings(args)
        return args.func(args)
    except RlvrError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished steps are cached, the step in progress was not written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's input: one line, a distinct status, the traceback on request
        if os.environ.get("RLVR_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (a bug in RLVR Lens: rerun with RLVR_DEBUG=1 for the "
            "traceback, and report it)",
            file=sys.stderr,
        )
        return 70
    finally:
        dataroots.activate(())  # a command's data roots end with it (main may be called again in-process)


def one_line(message: str) -> str:
    """`message` with control characters (a newline in a folder name, say) written as escapes: one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], message)


def _apply_settings(args: argparse.Namespace) -> None:
    """The extra a command needs; data roots for commands that read users' files; read-only mode refuses
    commands that write."""
    extra = "ray" if getattr(args, "backend", None) == "ray" else NEEDS_EXTRA.get(args.command)
    if extra:
        extras.require(extra, f"rlvr {args.command}")
    settings = common.settings_of(args)
    if args.command in READS_USERS_FILES:
        hub = (settings.hub_cache,) if settings.allow_hub and settings.hub_cache and settings.data_roots else ()
        # the checkpoints the tool writes into the cache (rank-k variants, predictions) are read back by it
        own = (str(Cache(settings.cache).variants_root),) if settings.data_roots else ()
        dataroots.activate((*settings.data_roots, *hub, *own))
    if settings.read_only and args.command in WRITES:
        raise UsageError(
            f"rlvr {args.command}",
            "a deployment that writes",
            "read-only mode (read_only in the config file or $RLVR_READ_ONLY)",
            "ask the server's admin, or unset read-only mode",
        )
