"""`rlvr claims`: the claims board of a run — each parameter-space claim about RLVR, measured, against chance.

rlvr claims RUN [--compare RUN ...] [--json] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import math

from ..errors import UsageError
from .common import add_cache_flags, cache_of


def register(sub) -> dict[str, argparse.ArgumentParser]:
    c = sub.add_parser(
        "claims", help="check every parameter-space claim about RLVR on a run, against chance, with a verdict"
    )
    c.add_argument("run", help="the run (rlvr runs lists them)")
    c.add_argument(
        "--compare",
        nargs="+",
        action="extend",
        default=[],
        metavar="RUN",
        help="runs from the same base to compare with",
    )
    c.add_argument("--json", action="store_true", help="print the board as JSON (a list of rows)")
    add_cache_flags(c)
    c.set_defaults(func=_cmd_claims)
    return {"claims": c}


def _cmd_claims(args: argparse.Namespace) -> int:
    from ..pipelines.claims import as_json, claims_run

    cache = cache_of(args)
    runs = set(cache.queries().runs())
    for run in [args.run, *args.compare]:
        if run not in runs:
            raise UsageError(f"run '{run}'", "a run in the cache", "no such run", "rlvr runs lists the runs")
    rows = claims_run(cache, args.run, args.compare)
    if not rows:
        raise UsageError(
            f"run '{args.run}'", "an analysed step", "only the base", "analyse a step first (rlvr analyze)"
        )
    if args.json:
        print(json.dumps(as_json(rows), indent=1))
        return 0
    print(f"claims board of run '{args.run}' at step {rows[0]['step']} (median over tensors [95% interval]; chance)")
    for r in rows:
        print(f"{r['claim_id']:<12} {r['verdict'].upper():<20} {r['claim']}  ({r['citation']})")
        if r["value"] is not None:
            print(f"{'':<12} {r['measure']} = {_num(r['value'])} [{_num(r['low'])}, {_num(r['high'])}] over {r['n']}; "
                  f"chance {_num(r['chance'])} [{_num(r['chance_low'])}, {_num(r['chance_high'])}]")  # fmt: skip
        if r["reason"]:
            print(f"{'':<12} {r['reason']}")
    return 0


def _num(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
