"""Figures of the research views (Prediction, Metrics vs accuracy): plotly figures from query results,
with the chart rules of `figures` (modules in model order, the palette). No math beyond drawing the
fitted line the cache stores."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go

from .figures import PALETTE, module_order


def prediction_figure(real, predicted, to_step: int, title: str) -> go.Figure:
    """Real median sigma1 of dW per module kind over steps (`real`: module, step, median), and each module
    kind's fitted line (`predicted`: module, fit_intercept, fit_slope, sigma_pred, sigma_real) from step 0
    to `to_step`, dashed, with the predicted (open) and real (filled) sigma1 at `to_step`."""
    figure = go.Figure()
    modules = module_order(set(real["module"]) | set(predicted["module"]))
    for i, module in enumerate(modules):
        color = PALETTE[i % len(PALETTE)]
        rows = real[real["module"] == module]
        figure.add_scatter(x=rows["step"], y=rows["median"], mode="lines+markers", name=module, line_color=color)
        fit = predicted[predicted["module"] == module]
        if fit.empty:
            continue
        f = fit.iloc[0]
        ends = [0, to_step]
        figure.add_scatter(
            x=ends, y=[max(0.0, f.fit_intercept + f.fit_slope * s) for s in ends], mode="lines",
            line={"color": color, "dash": "dash"}, name=f"{module}: fitted line", showlegend=False,
        )  # fmt: skip
        figure.add_scatter(
            x=[to_step], y=[f.sigma_pred], mode="markers", marker={"color": color, "symbol": "circle-open", "size": 12},
            name=f"{module}: predicted at {to_step}", showlegend=False,
        )  # fmt: skip
    figure.update_layout(title=title, xaxis_title="step", yaxis_title="σ1 of dW (median over layers)")
    return figure


def cosine_figure(predicted, title: str) -> go.Figure:
    """|cos(u1(t), u1(T))| per module kind (median over layers), on [0, 1]."""
    order = module_order(predicted["module"])
    figure = px.bar(predicted, x="module", y="cos_u1", category_orders={"module": order}, title=title)
    figure.update_yaxes(range=[0, 1], title="|cos(u1(t), u1(T))|")
    return figure


def metric_scatter(frame, metric: str, test_metric: str, title: str) -> go.Figure:
    """One point per step: the metric (x) against the held-out metric (y), coloured by step."""
    figure = px.scatter(frame, x="value", y="test", color="step", title=title, hover_data=["step"])
    figure.update_traces(marker={"size": 11})
    figure.update_layout(xaxis_title=metric, yaxis_title=test_metric)
    return figure
