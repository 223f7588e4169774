"""The chart rules every page follows: the figure builders of `rlvr_core.report.figures` (re-exported
here, so `rlvr report` and `rlvr figure` draw the same figures), `chart` (how a page shows one), and the
monitor's banner text.
"""

from __future__ import annotations

import re

import plotly.graph_objects as go
import streamlit as st

from rlvr_core.errors import RlvrError
from rlvr_core.math.monitor import FLAG, MonitorRule
from rlvr_core.report.export import FIGURES, export
from rlvr_core.report.figures import (
    FEW_TAIL,
    P_VALUE,
    PALETTE,
    TINY,
    accuracy_bands,
    accuracy_interval,
    add_band,
    banded,
    banded_alpha,
    bounded,
    ccdf_figure,
    esd_figure,
    fit_quality,
    heatmap,
    heatmap_chance,
    lines,
    module_order,
    seed_band,
    steps_axis,
    with_chance,
    with_intervals,
)
from rlvr_core.report.layout import for_pages, legend_below
from rlvr_core.report.measures import MEASURES, Measure, caption, label, per_shape, per_shape_text
from rlvr_core.report.plain import plain
from rlvr_core.report.reward_figures import reward_test_figure, two_panels

__all__ = [
    "FEW_TAIL",
    "MEASURES",
    "MONITOR_RULE",
    "PALETTE",
    "P_VALUE",
    "TINY",
    "Measure",
    "accuracy_bands",
    "accuracy_interval",
    "add_band",
    "banded",
    "banded_alpha",
    "bounded",
    "caption",
    "ccdf_figure",
    "chart",
    "esd_figure",
    "fit_quality",
    "for_pages",
    "heatmap",
    "heatmap_chance",
    "label",
    "legend_below",
    "lines",
    "module_order",
    "monitor_banner",
    "named_figure",
    "per_shape",
    "per_shape_text",
    "reward_test_figure",
    "seed_band",
    "steps_axis",
    "two_panels",
    "with_chance",
    "with_intervals",
]


def chart(figure: go.Figure, key: str | None = None) -> None:
    """Draw a figure the way every page does (full width, plotly's own PNG export in its toolbar), with an
    "SVG / PDF" export in the print style (`rlvr_core.report.export`: the files `rlvr figure` writes)."""
    shown = for_pages(go.Figure(figure))  # titles broken, legends under the plot: readable at 800 px
    st.plotly_chart(plain(shown), width="stretch", key=key)  # names drawn as text, never as HTML
    title = (figure.layout.title.text or "figure") if figure.layout.title else "figure"
    name = key or re.sub(r"[^\w.]+", "-", title).strip("-")[:150] or "figure"  # σ, α and a long run name kept
    with st.popover("SVG / PDF", help="this figure for a paper: print style, vector formats"):
        fmt = st.radio("Format", ["svg", "pdf"], key=f"export_format_{name}", horizontal=True)
        if st.button("Prepare the file", key=f"export_make_{name}"):
            try:
                st.session_state[f"export_file_{name}"] = (fmt, export(figure, fmt))
            except RlvrError as error:
                st.error(str(error))
        ready = st.session_state.get(f"export_file_{name}")
        if ready:
            st.download_button(
                f"Download {ready[0].upper()}", ready[1], file_name=f"{name}.{ready[0]}", key=f"export_get_{name}"
            )


def named_figure(q, run: str, kind: str, target: str = "dW") -> go.Figure:
    """The figure `rlvr figure --kind KIND` writes (`rlvr_core.report.export.FIGURES`), for a page."""
    return FIGURES[kind].build(q, run, target)


MONITOR_RULE = (
    f"The monitor (rlvr_core.math.monitor): at each step with a held-out value, straight lines are fitted to "
    f"the training reward and to the held-out metric over the last {MonitorRule().evaluations} held-out "
    "evaluations' steps; flagged when the reward's slope is above 0 with 95% confidence and the held-out "
    "slope is not (flat, falling, or too noisy to call rising). The gap is training-pool accuracy minus "
    "test, where the log has it."
)
"""The monitor's rule in one caption."""


def monitor_banner(run: str, row) -> tuple[bool, str]:
    """(flagged, the banner text) of a run's last monitor verdict (a row of the `decoupling` view)."""

    def slope(prefix: str) -> str:
        per = 100  # slopes per 100 steps read better than per step
        low, high = row[f"{prefix}_low"] * per, row[f"{prefix}_high"] * per
        return f"{row[f'{prefix}_slope'] * per:+.3f} per 100 steps (95%: {low:+.3f} to {high:+.3f})"

    where = f"{run}, steps {int(row['window_start'])}-{int(row['step'])}"
    if row["status"] == FLAG:
        text = (
            f"{where}: reward rising, test flat or falling since step {int(row['since'])}: "
            f"{row['reward_metric']} {slope('reward')}, {row['test_metric']} {slope('test')}."
        )
    elif row["status"] == "clear" and row["gap_widening"]:  # the verdict and its sentences agree
        return True, (
            f"{where}: reward and test move together ({row['reward_metric']} {slope('reward')}, "
            f"{row['test_metric']} {slope('test')}), but the gap {row['pool_metric']} − {row['test_metric']} is "
            f"widening: {slope('gap')}: the training pool is learned ever better than held-out problems."
        )
    elif row["status"] == "clear":
        text = f"{where}: clear: {row['reward_metric']} {slope('reward')}, {row['test_metric']} {slope('test')}."
    else:
        text = (
            f"{where}: not enough data for the monitor yet ({int(row['n_test'])} of the "
            f"{MonitorRule().evaluations} held-out values it needs)."
        )
    if row["gap_widening"]:
        text += f" The gap {row['pool_metric']} − {row['test_metric']} is widening: {slope('gap')}."
    return row["status"] == FLAG, text
