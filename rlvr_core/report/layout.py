"""How a chart is laid out on a page from 800 px wide up (issue 31's second tour: at 800 px a legend column
took half a chart and titles ran off its edge): `for_pages` breaks long titles and puts the legend under the
plot. The pages (`rlvr_dashboard.charts.chart`) and `rlvr report` apply it to the figures as built; the
print-style export (`report.export`) does not (its size is fixed)."""

from __future__ import annotations

import math
import textwrap

import plotly.graph_objects as go

TITLE_WIDTH = 60
"""Characters per line of a chart's title (what fits a 460 px wide chart at plotly's title size)."""


def for_pages(figure: go.Figure) -> go.Figure:
    """A figure laid out for a page from 800 px wide up: a long title broken into lines (plotly never wraps
    one, so the rest was cut off) and the legend as rows under the plot (`legend_below`)."""
    title = figure.layout.title.text if figure.layout.title else None
    if title and "\n" not in title and len(title) > TITLE_WIDTH:
        figure.update_layout(title_text="\n".join(textwrap.wrap(title, TITLE_WIDTH)))
    return legend_below(figure)


def legend_below(figure: go.Figure) -> go.Figure:
    """The legend as rows under the plot instead of a column beside it (which took half of an 800 px wide
    chart), the figure made taller by its rows so the plot keeps its height. Figures without a legend (a
    heatmap's colour bar) are left as they are."""
    named = [t for t in figure.data if t.showlegend is not False and t.name]
    shown = len(named) > 1 or figure.layout.showlegend is True or any(t.showlegend is True for t in named)
    if not named or not shown or figure.layout.showlegend is False:  # plotly draws no legend for it
        return figure
    rows = math.ceil(len({t.legendgroup or t.name for t in named}) / 2)
    height = (figure.layout.height or 450) + 24 * rows
    return figure.update_layout(
        height=height,
        legend={"orientation": "h", "xanchor": "left", "x": 0, "yanchor": "bottom", "y": 0, "yref": "container"},
    )
