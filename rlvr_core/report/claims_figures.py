"""The claims board's figure: each measured claim's median and interval beside its chance band.

One small panel per measured claim (their measures have different units), in the board's order: a grey
band from the chance level's low to high with a dashed line at its mean, and the measure's median (a dot)
with its 95% interval (an error bar). The verdict is in each panel's title. Claims without a measure are
left out (the table beside says why).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {"supported": "#2b8a3e", "contradicted": "#c92a2a"}


def claims_figure(rows, title: str) -> go.Figure:
    """`rows`: the `claims` view's rows of one run (a DataFrame or a list of dicts)."""
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    measured = [r for r in records if _finite(r.get("value"))]
    cols = 3
    n_rows = max(1, math.ceil(len(measured) / cols))
    titles = [f"{r['claim_id']}:\n{r['verdict']}" for r in measured]  # two lines: fits a 124 px wide panel
    figure = make_subplots(rows=n_rows, cols=cols, subplot_titles=titles or [""], horizontal_spacing=0.08)
    for i, r in enumerate(measured):
        row, col = i // cols + 1, i % cols + 1
        if _finite(r.get("chance")):
            low, high = r["chance_low"], r["chance_high"]
            figure.add_trace(go.Bar(x=[r["measure"]], y=[high - low], base=[low], marker_color="rgba(120,120,120,0.35)",
                                    width=0.6, name="chance band", showlegend=i == 0,
                                    hovertemplate=f"chance {r['chance']:.4g} [{low:.4g}, {high:.4g}]<extra></extra>"),
                             row=row, col=col)  # fmt: skip
            figure.add_trace(go.Scatter(x=[r["measure"]], y=[r["chance"]], mode="markers", name="chance",
                                        marker={"symbol": "line-ew", "size": 30, "line": {"width": 2, "color": "#555"}},
                                        showlegend=i == 0, hoverinfo="skip"), row=row, col=col)  # fmt: skip
        error = {"type": "data", "symmetric": False, "array": [r["high"] - r["value"]],
                 "arrayminus": [r["value"] - r["low"]]}  # fmt: skip
        figure.add_trace(go.Scatter(x=[r["measure"]], y=[r["value"]], error_y=error, mode="markers",
                                    marker={"size": 11, "color": COLORS.get(r["verdict"], "#1f77b4")},
                                    name="this run (median, 95% interval)", showlegend=i == 0,
                                    hovertemplate=f"{r['value']:.4g} [{r['low']:.4g}, {r['high']:.4g}]<extra></extra>"),
                         row=row, col=col)  # fmt: skip
    figure.update_layout(title=title, height=260 * n_rows + 60, barmode="overlay", legend={"orientation": "h"})
    return figure


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)
