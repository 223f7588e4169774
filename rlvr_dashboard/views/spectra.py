"""Spectra and heavy tails page: one tensor's ESD on log-log axes with its power-law fit and xmin, overlaid
on the same tensor's ESD at other steps (the base, step 0, against the step by default), the step's alpha
as a layer x module heatmap, alpha over steps per module kind or per layer of one module kind, and the fit
table with the likelihood-ratio tests."""

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from rlvr_dashboard.charts import fitted_power_law
from rlvr_dashboard.ui import pick, pick_many, queries

st.title("Spectra and heavy tails")
q = queries()
runs = q.fit_runs()
if not runs:
    st.info("No power-law fits cached yet: `rlvr analyze` computes them (unless --no-fits).")
    st.stop()
left, middle, right = st.columns(3)
run = pick("Run", runs, "run", container=left)
steps = q.fit_steps(run)
step = pick("Step", steps, "step", default_index=len(steps) - 1, container=middle)
target = pick("Target", ["W", "dW"], "target", container=right, radio=True)
fits = q.fits(run, step, target)
if fits.empty:
    st.info(f"Step {step} has no {target} fits (the base, step 0, has W only).")
    st.stop()
tensor = pick("Tensor", fits["tensor"].tolist(), "tensor")
row = fits[fits["tensor"] == tensor].iloc[0]
others = [s for s in steps if s != step and (target == "W" or s != 0)]
overlay = pick_many("Overlay the ESD at steps", others, "vs", [0] if target == "W" and 0 in others else [])
hists = q.esd_histograms(run, tensor, target, [step] + overlay)
figure = go.Figure()
palette = px.colors.qualitative.Plotly
for i, (other, hist) in enumerate(hists[hists["density"] > 0].groupby("step")):  # empty bins: off a log axis
    centres = np.sqrt(hist["bin_lo"] * hist["bin_hi"])
    main = other == step
    figure.add_scatter(
        x=centres,
        y=hist["density"],
        mode="markers" if main else "lines+markers",
        name=f"ESD at step {other}" + (" (base)" if other == 0 else ""),
        opacity=1.0 if main else 0.7,
        marker={"color": palette[0] if main else palette[2 + i % 8], "size": 7 if main else 4},
        line={"dash": "dot", "width": 1},
    )
    if main and row["fit_status"] == "ok":
        line = fitted_power_law(centres, row["alpha"], row["xmin"], row["n_tail"], row["n_evals"])
        figure.add_scatter(
            x=centres, y=line, mode="lines", name=f"power law, α = {row['alpha']:.2f}", line={"color": palette[1]}
        )
        figure.add_vline(x=row["xmin"], line_dash="dash", annotation_text="xmin")
figure.update_xaxes(type="log", title="eigenvalue λ of XᵀX")
figure.update_yaxes(type="log", title="density")
figure.update_layout(title=f"ESD of {target}: {tensor}, step {step}")
st.plotly_chart(figure, width="stretch")
grid = fits.pivot_table(index="layer", columns="module", values="alpha")
st.plotly_chart(
    px.imshow(grid, aspect="auto", labels={"color": "α"}, title=f"α of {target}, step {step}"), width="stretch"
)
modules = sorted(fits["module"].unique())
group = pick("α over steps", ["median per module kind"] + modules, "group")
if group in modules:
    over_steps = q.alpha_per_layer(run, target, group)
    curves = px.line(
        over_steps, x="step", y="alpha", color="layer", markers=True, title=f"α of {target}: {group} per layer"
    )
else:
    over_steps = q.alpha_by_module(run, target)
    curves = px.line(
        over_steps, x="step", y="alpha", color="module", markers=True, title=f"median α of {target} over steps"
    )
st.plotly_chart(curves, width="stretch")
st.dataframe(fits, hide_index=True, width="stretch")
st.download_button("Download the fits (CSV)", fits.to_csv(index=False), f"fits_{run}_{step}_{target}.csv", "text/csv")
