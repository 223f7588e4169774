"""The chart rules every figure follows, in one place (plotly; no queries, no Streamlit): the dashboard's
pages (through `rlvr_dashboard.charts`, which re-exports all of this), `rlvr report` and `rlvr figure`
draw with the same builders.

- Measures have a readable label, a unit where there is one, a one-line definition (`measures.MEASURES`), and a
  fixed range when they are bounded (cosines, overlaps, energies in [0, 1]), so a flat 1.0 is drawn flat.
- Layers are integers on every axis; modules are in model order (attention q, k, v, o, then the MLP's gate,
  up, down; experts grouped, routers last: `module_order`).
- Steps are integer ticks; a chart with a few steps shows exactly those.
- p-values and tiny numbers are written in scientific notation (`P_VALUE`, `TINY`).
- Fits: a failed fit is drawn as its histogram with the cached reason, never a lone dot; a fit's quality
  (tail size, KS distance, the likelihood-ratio verdict) is spelled out (`fit_quality`).
- Accuracies carry 95% Wilson intervals (`accuracy_interval`), recoveries their bootstrap intervals; runs
  that are seeds of one experiment are drawn as a band: the mean over seeds and its 95% Student-t interval
  (`seed_band`, `add_band`).
"""

from __future__ import annotations

import math
import re

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from ..math.heavytail import ccdf, powerlaw_ccdf, powerlaw_density
from ..math.stats import seed_interval, wilson_interval
from .measures import MEASURES, label

COLORBAR_ON_TOP = {
    "orientation": "h", "yref": "paper", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left", "len": 1,
    "thickness": 10, "title": {"side": "top"}, "ticklabelposition": "outside bottom",
}  # fmt: skip
"""A heatmap's colour bar: a strip between the title and the cells, as wide as the cells."""

PALETTE = px.colors.qualitative.Plotly
FEW_TAIL = 50
"""Fits on fewer tail eigenvalues than this are flagged as weakly determined."""


P_VALUE = "%.2e"
"""Number format of p-values in tables."""
TINY = "%.3g"
"""Number format of values that span orders of magnitude."""

_ORDER = [
    "q_proj",
    "k_proj",
    "v_proj",
    "query_key_value",
    "c_attn",
    "q_a_proj",
    "q_b_proj",
    "kv_a_proj_with_mqa",
    "kv_b_proj",
    "o_proj",
    "dense",
    "c_proj",
    "gate_proj",
    "w1",
    "up_proj",
    "w3",
    "c_fc",
    "dense_h_to_4h",
    "down_proj",
    "w2",
    "dense_4h_to_h",
    "gate_up_proj",
    "gate",
]
_EXPERT = re.compile(r"experts?\.(\d+)\.")


def module_order(modules) -> list[str]:
    """Modules in model order: attention (q, k, v, o), then the MLP (gate, up, down), experts grouped by
    number, routers last; unknown names after, alphabetically."""

    def key(module: str) -> tuple:
        last = module.split(".")[-1]
        attention = 0 if re.search(r"attn|attention", module) else 1
        expert = _EXPERT.search(module)
        router = module.endswith(".gate") or module == "gate"
        position = _ORDER.index(last) if last in _ORDER else len(_ORDER)
        return (attention, router, int(expert.group(1)) if expert else -1, position, module)

    return sorted(set(modules), key=key)


def heatmap(frame, value: str, measure: str, title: str, x: str = "module") -> go.Figure:
    """A layer x module (or layer x step, or layer x expert) heatmap: integer layers, modules in model order,
    a fixed colour range for bounded measures; several rows per cell (a layer's experts) show their median;
    48 layers x 128 experts stay readable (a row per layer, a tick every few layers and experts, the exact
    cell on hover)."""
    grid = frame.pivot_table(index="layer", columns=x, values=value, aggfunc="median")  # over a cell's experts
    if x == "module":
        grid = grid[module_order(grid.columns)]
    bounds = MEASURES[measure].bounds if measure in MEASURES else None
    figure = px.imshow(
        grid,
        aspect="auto",
        labels={"color": label(measure), "y": "layer", "x": x},
        title=title,
        zmin=bounds[0] if bounds else None,
        zmax=bounds[1] if bounds else None,
    )
    layers = list(grid.index)
    every = max(1, len(layers) // 24)  # 48 layers: every other one labelled, every row still hoverable
    figure.update_yaxes(tickmode="array", tickvals=layers[::every], ticktext=[str(int(v)) for v in layers[::every]])
    if x == "step":
        figure.update_xaxes(tickmode="array", tickvals=list(grid.columns))
    if x == "expert":  # 128 experts: a tick every 8, integer labels
        columns = list(grid.columns)
        step = max(1, len(columns) // 16)
        figure.update_xaxes(tickmode="array", tickvals=columns[::step], ticktext=[str(int(c)) for c in columns[::step]])
    figure.update_coloraxes(colorbar=COLORBAR_ON_TOP)  # beside the cells it took a third of an 800 px page
    figure.update_layout(margin={"l": 50, "r": 20, "t": 110})
    if len(layers) > 24:  # tall enough for one readable row per layer
        figure.update_layout(height=min(160 + 14 * len(layers), 1100))
    return figure


def steps_axis(figure: go.Figure, steps) -> go.Figure:
    """Integer step ticks; with a few steps exactly those (a one-step chart shows one tick)."""
    steps = sorted({int(s) for s in steps})
    if 0 < len(steps) <= 12:
        figure.update_xaxes(tickmode="array", tickvals=steps)
        if len(steps) == 1:
            figure.update_xaxes(range=[steps[0] - 1, steps[0] + 1])
    else:
        figure.update_xaxes(tickformat="d")
    return figure.update_xaxes(title="step")


def bounded(figure: go.Figure, measure: str) -> go.Figure:
    """Fix the y range of a bounded measure (slightly padded), and label the axis."""
    bounds = MEASURES[measure].bounds if measure in MEASURES else None
    if bounds:
        pad = 0.02 * (bounds[1] - bounds[0])
        figure.update_yaxes(range=[bounds[0] - pad, bounds[1] + pad])
    return figure.update_yaxes(title=label(measure))


def lines(frame, y: str, color: str, measure: str, title: str) -> go.Figure:
    """One line per `color` group over steps (layers as integers, modules in model order)."""
    frame = frame.copy()
    if color == "layer":
        frame["layer"] = frame["layer"].astype("Int64").astype(str)
        order = {"layer": sorted(frame["layer"].unique(), key=int)}
    else:
        order = {color: module_order(frame[color].unique())}
    figure = px.line(
        frame,
        x="step",
        y=y,
        color=color,
        markers=True,
        title=title,
        category_orders=order,
        color_discrete_sequence=PALETTE,
    )  # the colours `banded` gives each module kind: one module, one colour on every chart
    return bounded(steps_axis(figure, frame["step"]), measure)


def banded(frame, measure: str, title: str) -> go.Figure:
    """Median lines with shaded quartile bands, one per module kind (columns module, step, median, q1, q3)."""
    figure = go.Figure()
    for i, module in enumerate(module_order(frame["module"].unique())):
        part = frame[frame["module"] == module]
        color = PALETTE[i % len(PALETTE)]
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
    figure.update_layout(title=title)
    return bounded(steps_axis(figure, frame["step"]), measure)


def banded_alpha(frame, title: str) -> go.Figure:
    """Median α over steps, one line per module kind in model order (columns module, step, alpha)."""
    return lines(frame, "alpha", "module", "alpha", title)


def esd_figure(hists, step: int, fit: dict, title: str) -> go.Figure:
    """The ESD (log-binned density on log-log axes) at `step`, overlaid on other steps' ESDs, with the fitted
    power law and xmin when the fit succeeded, and the fit's failure reason when it did not. An empty bin is
    a gap in its line (it has no place on a log axis, and joining its neighbours would draw the sparse tail
    too high)."""
    figure = go.Figure()
    for i, (other, hist) in enumerate(hists.groupby("step")):
        centres = np.sqrt(hist["bin_lo"] * hist["bin_hi"])
        main = other == step
        figure.add_scatter(
            x=centres,
            y=hist["density"].where(hist["density"] > 0),  # empty: NaN, a gap
            mode="lines+markers",
            connectgaps=False,
            name=f"ESD at step {other}" + (" (base)" if other == 0 else ""),
            opacity=1.0 if main else 0.7,
            line={"dash": "solid" if main else "dot", "width": 1},
            marker={"color": PALETTE[0] if main else PALETTE[2 + i % 8], "size": 7 if main else 4},
        )
        if main and fit.get("fit_status") == "ok":
            density = powerlaw_density(np.asarray(centres), fit["alpha"], fit["xmin"], fit["n_tail"] / fit["n_evals"])
            figure.add_scatter(
                x=centres, y=density, mode="lines", name=f"power law, α = {fit['alpha']:.2f}",
                line={"color": PALETTE[1], "width": 2},
            )  # fmt: skip
    _fit_marks(figure, fit)
    figure.update_xaxes(type="log", title="eigenvalue λ of XᵀX", exponentformat="power")
    figure.update_yaxes(type="log", title="density", exponentformat="power")
    return figure.update_layout(title=title)


def ccdf_figure(svs: dict[int, list[float]], step: int, fit: dict, target: str, title: str) -> go.Figure:
    """The rank plot: the share of eigenvalues >= λ (the empirical CCDF, one point per eigenvalue above the
    fit's floor) at `step` and the other steps in `svs`, with the fitted power law from xmin and its 95%
    binomial band (`math.heavytail.powerlaw_ccdf`); no bins, so the tail is drawn as it is."""
    figure = go.Figure()
    for i, (other, sv) in enumerate(sorted(svs.items())):
        lam, share = ccdf(np.asarray(sv), relative_floor=target == "dW")
        main = other == step
        figure.add_scatter(
            x=lam, y=share, mode="markers", name=f"eigenvalues at step {other}" + (" (base)" if other == 0 else ""),
            opacity=1.0 if main else 0.6, marker={"color": PALETTE[0] if main else PALETTE[2 + i % 8],
                                                  "size": 5 if main else 3},
        )  # fmt: skip
        if main and fit.get("fit_status") == "ok" and lam.size:
            x = np.geomspace(fit["xmin"], float(lam[-1]), 80)
            p, low, high = powerlaw_ccdf(x, fit["alpha"], fit["xmin"], fit["n_tail"], fit["n_evals"])
            band = np.clip(low, 0.5 / fit["n_evals"], None)  # 0 has no place on a log axis
            figure.add_scatter(x=x, y=high, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip")
            figure.add_scatter(
                x=x, y=band, mode="lines", line={"width": 0}, fill="tonexty", fillcolor="rgba(239,85,59,0.15)",
                name="95% binomial band of the fit", hoverinfo="skip",
            )  # fmt: skip
            figure.add_scatter(x=x, y=p, mode="lines", name=f"power law, α = {fit['alpha']:.2f}",
                               line={"color": PALETTE[1], "width": 2})  # fmt: skip
    _fit_marks(figure, fit)
    figure.update_xaxes(type="log", title="eigenvalue λ of XᵀX", exponentformat="power")
    figure.update_yaxes(type="log", title="share of eigenvalues ≥ λ", exponentformat="power")
    return figure.update_layout(title=title)


def _fit_marks(figure: go.Figure, fit: dict) -> None:
    """xmin as a dashed line when the fit succeeded; the failure reason when it did not."""
    if fit.get("fit_status") == "ok":
        # on a log axis a shape takes the value itself, an annotation its log10 (plotly.js)
        figure.add_shape(type="line", x0=fit["xmin"], x1=fit["xmin"], y0=0, y1=1, xref="x", yref="paper",
                         line={"dash": "dash", "color": "grey"})  # fmt: skip
        figure.add_annotation(
            x=math.log10(fit["xmin"]), y=1, xref="x", yref="paper", text="xmin", showarrow=False, yanchor="bottom"
        )
    if fit.get("fit_status") == "failed":
        figure.add_annotation(
            text=f"no power-law fit: {fit.get('fit_error')}", xref="paper", yref="paper", x=0.5, y=0.02,
            showarrow=False, bgcolor="rgba(255,240,240,0.9)",
        )  # fmt: skip


def fit_quality(fit: dict) -> str:
    """One line on how much to trust a fit: the tail it rests on, the KS distance, the verdict of the
    likelihood-ratio test against the exponential."""
    if fit.get("fit_status") != "ok":
        return f"no fit: {fit.get('fit_error')}"
    few = " (few: weakly determined)" if fit["n_tail"] < FEW_TAIL else ""
    lr, p = fit.get("lr_exponential"), fit.get("p_exponential")
    verdict = "heavy-tailed" if fit.get("heavy_tailed") else "not shown heavy-tailed"
    test = "" if lr is None or lr != lr else f"; vs exponential R = {lr:.1f}, p = {p:.1e}: {verdict}"
    return (
        f"α = {fit['alpha']:.2f} ± {fit['alpha_se']:.2f} from the top {fit['n_tail']} of {fit['n_evals']} "
        f"eigenvalues{few}; KS distance D = {fit['ks_d']:.3f}{test}"
    )


def accuracy_interval(accuracy: float, n_problems: int, samples: int = 1) -> tuple[float, float]:
    """The 95% Wilson interval of an accuracy over `n_problems` x `samples` graded answers."""
    total = max(int(n_problems) * max(int(samples), 1), 1)
    return wilson_interval(round(accuracy * total), total)


def with_intervals(frame, accuracy: str = "accuracy", n: str = "n_problems", samples: str | None = None):
    """`frame` with `low` and `high` columns: each accuracy's 95% Wilson interval, and error-bar offsets."""
    frame = frame.copy()
    spans = [
        accuracy_interval(a, k, s if samples else 1)
        for a, k, s in zip(frame[accuracy], frame[n], frame[samples] if samples else [1] * len(frame), strict=True)
    ]
    frame["low"], frame["high"] = [lo for lo, _ in spans], [hi for _, hi in spans]
    frame["error_plus"], frame["error_minus"] = frame["high"] - frame[accuracy], frame[accuracy] - frame["low"]
    return frame


def seed_band(frame, value: str, by: list[str], x: str = "step"):
    """Per `by` group and `x`: the number of seeds, the mean of `value` over them and its 95% Student-t
    interval (`math.stats.seed_interval`). `frame` holds one row per seed (run) and x."""
    import pandas as pd

    rows = []
    for keys, group in frame.groupby([*by, x], sort=True):
        stats = seed_interval(group[value].tolist())
        rows.append({**dict(zip([*by, x], keys if isinstance(keys, tuple) else (keys,), strict=True)), **stats})
    return pd.DataFrame(rows, columns=[*by, x, "n", "mean", "sd", "low", "high"])


def accuracy_bands(recovery):
    """Seed bands of the full model's and each variant's accuracy (`seed_band` over a `recovery` frame with
    `family` and `variant` columns): defined for every seed, also where a gain was within noise."""
    import pandas as pd

    full = recovery.drop_duplicates(["run", "step", "dataset"]).assign(model="full", accuracy=lambda f: f["acc_full"])
    variants = recovery.assign(model=recovery["variant"], accuracy=recovery["acc_rank"])
    return seed_band(pd.concat([full, variants], ignore_index=True), "accuracy", ["family", "model"])


def add_band(figure: go.Figure, band, name: str, color: str, row: int | None = None, x: str = "step") -> None:
    """The mean line and the shaded interval of one `seed_band` group (a step with one seed: no shading), in
    panel `row` of a figure of stacked panels (`two_panels`) when given."""
    extra = {} if row is None else {"row": row, "col": 1}
    shaded = band[band["low"].notna()]
    if not shaded.empty:
        figure.add_scatter(
            x=list(shaded[x]) + list(shaded[x])[::-1],
            y=list(shaded["high"]) + list(shaded["low"])[::-1],
            fill="toself",
            fillcolor=color,
            opacity=0.2,
            line={"width": 0},
            hoverinfo="skip",
            name=f"{name}: 95% interval",
            **extra,
        )
    figure.add_scatter(
        x=band[x],
        y=band["mean"],
        mode="lines+markers",
        line={"color": color},
        name=f"{name}: mean of {int(band['n'].max())} seed{'s' if int(band['n'].max()) != 1 else ''}",
        customdata=band[["n", "low", "high"]],
        hovertemplate="step %{x}: %{y:.3f} (n=%{customdata[0]}, 95% %{customdata[1]:.3f}-%{customdata[2]:.3f})",
        **extra,
    )


def with_chance(figure: go.Figure, value: float | None, what: str) -> go.Figure:
    """A dashed grey line at what chance gives (`value`; nothing when None), named in the legend."""
    if value is None:
        return figure
    x = [t for trace in figure.data for t in (trace.x if trace.x is not None else [])]
    if not x:
        return figure
    figure.add_scatter(x=[min(x), max(x)], y=[value, value], mode="lines", name=f"chance: {what} ({value:.3g})",
                       line={"dash": "dash", "color": "#777", "width": 2}, hoverinfo="name")  # fmt: skip
    return figure


def heatmap_chance(figure: go.Figure, chances: list[tuple[str, float, float, float]]) -> go.Figure:
    """A heatmap's chance level: (shape, mean, low, high) of an i.i.d. Gaussian matrix of each shape, said in
    the title and marked on the colour bar where it falls inside the colour range (a band has no place in
    a heatmap's cells)."""
    if not chances:
        return figure
    lo, hi = min(c[1] for c in chances), max(c[1] for c in chances)
    said = f"{lo:.3g}" if f"{lo:.3g}" == f"{hi:.3g}" else f"{lo:.3g} to {hi:.3g}"
    figure.update_layout(title_text=f"{figure.layout.title.text}\nchance (a Gaussian matrix, same shape): {said}")
    z = np.asarray(figure.data[0].z, dtype=float)
    axis = figure.layout.coloraxis
    low = axis.cmin if axis.cmin is not None else float(np.nanmin(z))
    high = axis.cmax if axis.cmax is not None else float(np.nanmax(z))
    if low <= lo <= high and high > low:
        ticks = [float(t) for t in np.linspace(low, high, 5) if abs(t - lo) > 0.1 * (high - low)]  # no overprint
        figure.update_coloraxes(colorbar={"tickmode": "array", "tickvals": [*ticks, lo],
                                          "ticktext": [f"{t:.3g}" for t in ticks] + ["▲ chance"]})  # fmt: skip
    return figure
