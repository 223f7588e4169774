"""Layers page: per-layer norms and rank-1 energy of one checkpoint, as a layer x module heatmap."""

import plotly.express as px
import streamlit as st

from rlvr_core.store import open_cache, resolve_cache
from ui import pick

st.title("Layers")
con = open_cache(resolve_cache(None))
runs = [r for (r,) in con.execute("SELECT DISTINCT run FROM checkpoints ORDER BY run").fetchall()]
if not runs:
    st.info("No runs cached yet: see the Runs page.")
    st.stop()
run = pick("Run", runs, "run")
steps = [s for (s,) in con.execute("SELECT step FROM checkpoints WHERE run = ? ORDER BY step", [run]).fetchall()]
step = pick("Step", steps, "step", default_index=len(steps) - 1)
target = st.radio("Target", ["dW", "W"], horizontal=True)
metric = pick("Metric", ["rank1_energy", "stable_rank", "spectral_norm", "fro_norm"], "metric")
layers = con.execute(
    "SELECT layer, module, tensor, rows, cols, fro_norm, spectral_norm, stable_rank, rank1_energy "
    "FROM layers WHERE run = ? AND step = ? AND target = ? ORDER BY layer, module", [run, step, target]).df()
if layers.empty:
    st.info(f"Step {step} has no target {target} (the base model, step 0, has W only).")
    st.stop()
grid = layers.pivot_table(index="layer", columns="module", values=metric)
st.plotly_chart(px.imshow(grid, aspect="auto", labels={"color": metric},
                          title=f"{metric} of {target} — {run}, step {step}"), width="stretch")
st.dataframe(layers, hide_index=True, width="stretch")
st.download_button("Download (CSV)", layers.to_csv(index=False), f"layers_{run}_{step}_{target}.csv", "text/csv")
