"""Layers page: per-layer norms and rank-1 energy of one checkpoint, as a layer x module heatmap."""

import plotly.express as px
import streamlit as st

from rlvr_core.cache.queries import LAYER_MEASURES
from rlvr_dashboard.ui import pick, queries

st.title("Layers")
q = queries()
runs = q.runs()
if not runs:
    st.info("No runs cached yet: see the Runs page.")
    st.stop()
run = pick("Run", runs, "run")
steps = q.steps(run)
step = pick("Step", steps, "step", default_index=len(steps) - 1)
target = st.radio("Target", ["dW", "W"], horizontal=True)
metric = pick("Metric", list(LAYER_MEASURES), "metric")
layers = q.layers(run, step, target)
if layers.empty:
    st.info(f"Step {step} has no target {target} (the base model, step 0, has W only).")
    st.stop()
grid = layers.pivot_table(index="layer", columns="module", values=metric)
st.plotly_chart(
    px.imshow(grid, aspect="auto", labels={"color": metric}, title=f"{metric} of {target} — {run}, step {step}"),
    width="stretch",
)
st.dataframe(layers, hide_index=True, width="stretch")
st.download_button("Download (CSV)", layers.to_csv(index=False), f"layers_{run}_{step}_{target}.csv", "text/csv")
