"""`rlvr report` and `rlvr figure`: a run's results to take away, without a server (`report`).

rlvr report RUN [--out report.html] [--cache DIR]
rlvr figure RUN --kind alpha-over-steps|sigma1-over-steps|... [--target W|dW] --out fig.pdf|.svg|.png
            [--cache DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_cache_flags, cache_of


def register(sub) -> dict[str, argparse.ArgumentParser]:
    from ..report.export import FIGURES

    r = sub.add_parser("report", help="write one self-contained HTML file of a run's figures and tables")
    r.add_argument("run", help="the run (rlvr runs lists them)")
    r.add_argument("--out", help="the HTML file to write (default: <run>-report.html)")
    add_cache_flags(r)
    r.set_defaults(func=_cmd_report)
    f = sub.add_parser("figure", help="write one of a run's figures for a paper: SVG, PDF or PNG")
    f.add_argument("run", help="the run (rlvr runs lists them)")
    f.add_argument("--kind", required=True, choices=list(FIGURES), help="which figure (see docs/how-to/report.md)")
    f.add_argument("--target", default="dW", choices=["W", "dW"], help="W or dW, where the figure has one (dW)")
    f.add_argument("--out", required=True, help="the file to write: its suffix (.svg, .pdf, .png) is the format")
    add_cache_flags(f)
    f.set_defaults(func=_cmd_figure)
    return {"report": r, "figure": f}


def _cmd_report(args: argparse.Namespace) -> int:
    from ..cache.atomic import write_file_atomic
    from ..report.html import build_report

    cache = cache_of(args)
    out = _guarded(Path(args.out or f"{args.run}-report.html"), cache.root)
    text = build_report(cache, args.run)
    write_file_atomic(out, lambda tmp: _write(tmp, text.encode()))
    print(f"{out}: the report of run '{args.run}' ({len(text) / 1e6:.1f} MB, opens offline)")
    return 0


def _cmd_figure(args: argparse.Namespace) -> int:
    from ..cache.atomic import write_file_atomic
    from ..report.export import build_figure, export

    cache = cache_of(args)
    out = _guarded(Path(args.out), cache.root)
    figure = build_figure(cache.queries(), args.run, args.kind, args.target)
    data = export(figure, out.suffix.lstrip(".").lower())
    write_file_atomic(out, lambda tmp: _write(tmp, data))
    print(f"{out}: {args.kind} of run '{args.run}' ({len(data) / 1e3:.0f} kB)")
    return 0


def _guarded(out: Path, cache: Path) -> Path:
    """`out` when it may be written (see `guard_output_file`), its folder created."""
    from ..cache.atomic import guard_output_file

    guard_output_file(out, protected=[cache])
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
