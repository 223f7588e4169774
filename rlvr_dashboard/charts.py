"""Figure helpers shared by the pages (plotly; no queries, no math of their own)."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from rlvr_core.math.heavytail import powerlaw_density


def banded(frame, value: str, title: str) -> go.Figure:
    """Median lines with shaded quartile bands, one per module kind (columns module, step, median, q1, q3)."""
    figure = go.Figure()
    palette = px.colors.qualitative.Plotly
    for i, (module, part) in enumerate(frame.groupby("module")):
        color = palette[i % len(palette)]
        band = list(part["step"]) + list(part["step"])[::-1]
        figure.add_scatter(
            x=band,
            y=list(part["q3"]) + list(part["q1"])[::-1],
            fill="toself",
            opacity=0.15,
            fillcolor=color,
            line={"width": 0},
            showlegend=False,
            hoverinfo="skip",
            name=f"{module} quartiles",
        )
        figure.add_scatter(x=part["step"], y=part["median"], mode="lines+markers", name=module, line={"color": color})
    figure.update_layout(title=title, xaxis_title="step", yaxis_title=value)
    return figure


def fitted_power_law(centres: np.ndarray, alpha: float, xmin: float, n_tail: int, n_evals: int) -> np.ndarray:
    """The cached power-law fit drawn as a density over the ESD histogram's bin centres (NaN below xmin)."""
    return powerlaw_density(np.asarray(centres), alpha, xmin, n_tail / n_evals)
