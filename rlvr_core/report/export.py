"""Publication figures: the dashboard's figures in one print style, written as SVG, PDF or PNG.

`FIGURES` names each figure `rlvr figure --kind` can draw from the cache (the same builders the pages
use); `publication(figure)` restyles a figure for a paper (white background, no plotly toolbar, fixed size
and font sizes); `export(figure, fmt)` renders it with plotly's kaleido, which drives a Chromium: Debian's
`chromium` is used ($BROWSER_PATH, default /usr/bin/chromium; kaleido never downloads one). The
dashboard's export buttons call the same two functions, so a page and `rlvr figure` give the same file.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..cache.atomic import OUTPUT_MARK
from ..errors import UsageError
from .plain import plain

if TYPE_CHECKING:  # plotly is imported when a figure is drawn: `rlvr --help` stays fast
    import plotly.graph_objects as go

    from ..cache.queries import Queries

FORMATS = ("svg", "pdf", "png")
STYLE = {"width": 720, "height": 440, "font_size": 14, "title_size": 16, "family": "Helvetica, Arial, sans-serif"}
"""The print style: figure size in CSS pixels (1 px = 1/96 in: 7.5 x 4.6 in), font sizes in points."""
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class FigureKind:
    """One figure `rlvr figure` draws: what it shows, and how, from the cache."""

    description: str
    build: Callable[[Queries, str, str], go.Figure]
    """(queries, run, target) -> the figure; `target` (W or dW) where the figure has one."""


def _alpha(q: Queries, run: str, target: str) -> go.Figure:
    """Median alpha per module kind over steps, beside what a Gaussian matrix of the run's shapes fits."""
    from .figures import banded_alpha
    from .research_figures import with_chance_band, with_gaps

    figure = banded_alpha(q.alpha_by_module(run, target), f"α of {target} over steps: {run}")
    return with_gaps(
        with_chance_band(figure, q.chance_band(run, "alpha"), "a Gaussian matrix"), q.alpha_gaps(run, target)
    )


def _layer_measure(measure: str) -> Callable[[Queries, str, str], go.Figure]:
    def build(q: Queries, run: str, target: str) -> go.Figure:
        from .figures import banded
        from .measures import label

        return banded(q.layer_measure_by_module(run, measure), measure, f"{label(measure)} of dW over steps: {run}")

    return build


def _alignment(q: Queries, run: str, target: str) -> go.Figure:
    from .figures import banded

    rows = q.alignment_by_module(run, "cos_u_final")
    return banded(rows, "cos_u_final", f"|cos(u1, u1 at the final step)|: {run}")


def _reward(q: Queries, run: str, target: str) -> go.Figure:
    from .figures import with_intervals
    from .reward_figures import reward_test_figure

    evals = with_intervals(q.evaluations([run]), samples="n")
    return reward_test_figure(q.reward_and_test([run]), evals, 10).update_layout(title=f"Reward and test: {run}")


FIGURES: dict[str, FigureKind] = {
    "alpha-over-steps": FigureKind("median α per module kind over steps (--target W or dW)", _alpha),
    "sigma1-over-steps": FigureKind("σ1 of dW per module kind (median, quartiles)", _layer_measure("spectral_norm")),
    "rank1-energy-over-steps": FigureKind("rank-1 energy of dW per module kind", _layer_measure("rank1_energy")),
    "alignment": FigureKind("|cos(u1, u1 final)| per module kind over steps", _alignment),
    "reward-vs-test": FigureKind("the logged reward and held-out metric over steps", _reward),
}


def build_figure(q: Queries, run: str, kind: str, target: str = "dW") -> go.Figure:
    """One named figure of `run`; a UsageError for an unknown kind or a figure with nothing to draw."""
    if kind not in FIGURES:
        raise UsageError("--kind", f"one of {', '.join(FIGURES)}", repr(kind), "pass one of the listed kinds")
    figure = FIGURES[kind].build(q, run, target)
    drawn = any(getattr(trace, "x", None) is not None and len(trace.x) for trace in figure.data)
    if not drawn and not figure.layout.annotations:  # a chart of only "no α" marks still says something
        raise UsageError(
            f"figure {kind} of run '{run}'", "data in the cache", "nothing to draw",
            "check the run's name (rlvr runs), and analyse it (or ingest its log) first",
        )  # fmt: skip
    return figure


def publication(figure: go.Figure) -> go.Figure:
    """A copy of `figure` in the print style (`STYLE`)."""
    import plotly.graph_objects as go

    styled = go.Figure(figure)
    styled.update_layout(
        template="simple_white",
        width=STYLE["width"],
        height=STYLE["height"],
        font={"family": STYLE["family"], "size": STYLE["font_size"]},
        title_font_size=STYLE["title_size"],
        margin={"l": 70, "r": 20, "t": 60, "b": 60},
    )
    return styled


def export(figure: go.Figure, fmt: str) -> bytes:
    """The figure in the print style as SVG, PDF or PNG bytes (kaleido with Debian's Chromium)."""
    if fmt not in FORMATS:
        raise UsageError("figure format", f"one of {', '.join(FORMATS)}", repr(fmt), "name the file .svg or .pdf")
    browser = os.environ.get("BROWSER_PATH") or (CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"))
    if not browser:
        raise UsageError(
            "figure export", "a Chromium for kaleido to drive", "none ($BROWSER_PATH unset, no /usr/bin/chromium)",
            "apt-get install chromium (or set BROWSER_PATH to a Chrome/Chromium binary)",
        )  # fmt: skip
    os.environ["BROWSER_PATH"] = browser
    try:
        data = publication(plain(figure)).to_image(format=fmt, scale=1)
        return stamp(titled(data, _title(figure)) if fmt == "pdf" else data, fmt)
    except Exception as exc:  # kaleido's own errors: one line, with what to check
        raise UsageError(
            "figure export", f"kaleido rendering {fmt.upper()} with {browser}", f"{type(exc).__name__}: {exc}",
            "check that the Chromium runs (chromium --headless --version)",
        ) from None  # fmt: skip


def _title(figure: go.Figure) -> str:
    return str(figure.layout.title.text or "RLVR Lens figure") if figure.layout.title else "RLVR Lens figure"


def titled(pdf: bytes, title: str) -> bytes:
    """`pdf` with its document title set to `title` (Chromium writes "Kaleido-fier"): an incremental update
    (PDF 1.7, 7.5.6) that redefines the Info dictionary and appends a cross-reference section and trailer
    pointing back to the old one, so nothing before it moves. The title is UTF-16BE (σ and α survive)."""
    trailer = pdf[pdf.rindex(b"trailer") :]
    info = re.search(rb"/Info\s+(\d+)\s+(\d+)\s+R", trailer)
    root = re.search(rb"/Root\s+(\d+\s+\d+\s+R)", trailer)
    size = re.search(rb"/Size\s+(\d+)", trailer)
    previous = re.search(rb"startxref\s+(\d+)", trailer)
    if not (info and root and size and previous):
        return pdf  # not the classic trailer Chromium writes: leave the file as it is
    body = pdf.rstrip(b"\n") + b"\n"
    number, generation = int(info.group(1)), int(info.group(2))
    text = ("\ufeff" + title).encode("utf-16-be").hex().upper()
    obj = f"{number} {generation} obj\n<</Title <{text}>\n/Producer (RLVR Lens)>>\nendobj\n".encode()
    xref_at = len(body) + len(obj)
    update = (
        f"xref\n0 1\n0000000000 65535 f \n{number} 1\n{len(body):010d} {generation:05d} n \n"
        f"trailer\n<</Size {size.group(1).decode()}\n"
        f"/Root {root.group(1).decode()}\n/Info {number} {generation} R\n/Prev {previous.group(1).decode()}>>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    )
    return body + obj + update.encode()


def stamp(data: bytes, fmt: str) -> bytes:
    """`data` with the tool's `OUTPUT_MARK` added the way each format allows, so that a later `rlvr figure`
    may replace the file and nothing else: an SVG comment before the root element, a PNG `tEXt` chunk
    (Software) after IHDR, a PDF comment line after `%%EOF` (readers ignore it)."""
    if fmt == "svg":
        text = data.decode()
        cut = text.index("?>") + 2 if text.startswith("<?xml") else 0
        return (text[:cut] + f"<!-- {OUTPUT_MARK.decode()} -->" + text[cut:]).encode()
    if fmt == "png":
        body = b"tEXt" + b"Software\0" + OUTPUT_MARK
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        end_of_ihdr = 8 + 4 + 4 + 13 + 4  # signature, length, type, IHDR data, CRC
        return data[:end_of_ihdr] + chunk + data[end_of_ihdr:]
    return data.rstrip(b"\n") + b"\n%" + OUTPUT_MARK + b"\n"
