"""Layers page: per-layer norms, σ1, stable rank and rank-1 energy of one checkpoint's W or dW, as a
layer x module heatmap (modules in model order, integer layers) and a table."""

import streamlit as st

from rlvr_core.cache.queries import LAYER_MEASURES
from rlvr_dashboard.charts import TINY, caption, chart, heatmap, label
from rlvr_dashboard.ui import live, pick, pick_step_and_target, queries

st.title("Layers")
q = queries()
runs = q.runs()
if not runs:
    st.info("No runs cached yet: see the Runs page.")
    live()  # a watched run's first steps appear without a reload
    st.stop()
left, middle, right = st.columns(3)
run = pick("Run", runs, "run", container=left)
live([run])
steps = q.steps(run)
step, target = pick_step_and_target(steps, ("dW", "W"), (middle, right))
metric = pick("Measure", list(LAYER_MEASURES), "metric", format_func=label)
layers = q.layers(run, step, target)
chart(heatmap(layers, metric, metric, f"{label(metric)} of {target}: {run}, step {step}"))
st.caption(caption(metric))
st.dataframe(
    layers,
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format=TINY) for c in LAYER_MEASURES},
)
st.download_button("Download (CSV)", layers.to_csv(index=False), f"layers_{run}_{step}_{target}.csv", "text/csv")
