"""Figures of the research views (Prediction, Metrics vs accuracy, several runs on one chart): plotly figures
from query results, with the chart rules of `figures` (modules in model order, the palette, bounded ranges,
chance drawn dashed). No math beyond drawing the fitted line the cache stores."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go

from .figures import PALETTE, bounded, module_order, steps_axis, with_chance


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


def runs_overlay(frame, measure: str, title: str) -> go.Figure:
    """One line per run over the layers (columns run, layer, value): integer layers, the measure's range."""
    figure = px.line(frame, x="layer", y="value", color="run", markers=True, title=title)
    layers = sorted(int(v) for v in frame["layer"].dropna().unique())
    every = max(1, len(layers) // 24)  # 48 layers: every other one labelled
    figure.update_xaxes(title="layer", tickmode="array", tickvals=layers[::every])
    return bounded(figure, measure)


def with_chance_band(figure: go.Figure, band: tuple[float, float, float] | None, what: str) -> go.Figure:
    """What chance gives as a dashed line at its mean over a shaded band [low, high] (nothing when None)."""
    if band is None:
        return figure
    mean, low, high = band
    if high > low:
        figure.add_hrect(y0=low, y1=high, fillcolor="#777", opacity=0.15, line_width=0)
    return with_chance(figure, mean, what)


def with_gaps(figure: go.Figure, gaps) -> go.Figure:
    """Mark the steps where every fit failed (`gaps`: `Queries.alpha_gaps`) with a dotted line labelled "no
    α", so a chart that stops says so instead of ending silently; `gaps_caption` says why."""
    for row in gaps.itertuples():  # shapes, not add_vline: that draws nothing on a figure without traces
        if row.failed == row.fits:
            figure.add_shape(type="line", x0=row.step, x1=row.step, xref="x", y0=0, y1=1, yref="paper",
                             line={"dash": "dot", "color": "#777"})  # fmt: skip
            figure.add_annotation(x=row.step, xref="x", y=1, yref="paper", text="no α", showarrow=False,
                                  yanchor="bottom", font={"color": "#555"})  # fmt: skip
    xs = [getattr(trace, "x", None) for trace in figure.data]
    drawn = {int(x) for values in xs if values is not None for x in values if x is not None}
    steps = sorted(drawn | {int(s) for s in gaps["step"]})
    if steps and not drawn:  # nothing else on the chart: plotly's autorange ignores shapes
        pad = max(1, (steps[-1] - steps[0]) // 10)
        figure.update_xaxes(type="linear", range=[steps[0] - pad, steps[-1] + pad])
    return steps_axis(figure, steps) if len(gaps) else figure


def gaps_caption(gaps) -> str:
    """The missing points of an alpha chart, per step: how many fits failed and the most common reason."""
    if gaps.empty:
        return ""
    parts = [f"step {row.step}: {row.failed} of {row.fits} fits failed ({row.reason})" for row in gaps.itertuples()]
    return "Missing α points: " + "; ".join(parts) + "."
