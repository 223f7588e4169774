"""`rlvr serve`: the dashboard and its workers as one service (the supervisor is `service.serve`).

rlvr serve [--port 8501] [--address 0.0.0.0] [--workers N|auto] [--cache DIR] [--config FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .common import add_cache_flags, settings_of

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub) -> dict[str, argparse.ArgumentParser]:
    s = sub.add_parser("serve", help="run the dashboard and its workers as one service")
    s.add_argument("--port", type=int, help="dashboard port (default 8501; config [server] port)")
    s.add_argument("--address", help="address to bind (default localhost; 0.0.0.0 in Docker)")
    s.add_argument("--workers", help="auto (one per visible GPU, else one CPU worker) or a number")
    add_cache_flags(s)
    s.set_defaults(func=_cmd_serve)
    return {"serve": s}


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..service.serve import dashboard_entry, plan, say, seed_demo, supervise

    if args.workers is not None and args.workers != "auto" and not args.workers.isdigit():
        raise UsageError("--workers", "auto or a number", repr(args.workers), "pass --workers auto or --workers 1")
    settings = settings_of(
        args, **{"server.port": args.port, "server.address": args.address, "server.workers": args.workers}
    )
    entry = dashboard_entry()  # before anything starts (the dashboard extra was checked by `cli.NEEDS_EXTRA`)
    cache = Path(settings.cache).expanduser().resolve()
    if settings.auth.mode == "header" and settings.server.address not in LOOPBACK:
        say(
            f"warning: header sign-in while listening on {settings.server.address}: anyone who reaches this port "
            f"directly can send {settings.auth.header} and act as any user; bind to 127.0.0.1 behind the proxy "
            "(server.address, $RLVR_ADDRESS or --address)"
        )
    if not settings.read_only:
        cache.mkdir(parents=True, exist_ok=True)
    say(seed_demo(settings, cache))
    return supervise(plan(settings, cache, args.config, entry))
