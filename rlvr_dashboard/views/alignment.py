"""Rank-1 dynamics and alignment page: how the rank-1 components of the updates dW grow and settle over
training. sigma1, rank-1 energy and ||dW||_F over steps; |cos| between each tensor's top left (or right)
singular vector and the final step's (or the previous step's); principal-direction overlap (the top-k
subspace with the final step's, and u1 with the base weight's own top singular directions). Each per module
kind (median with quartile bands) or per layer of one module kind, and as a layer x step heatmap."""

import plotly.express as px
import streamlit as st

from rlvr_dashboard.charts import banded
from rlvr_dashboard.ui import pick, queries

MEASURES = {
    "cos_u_final": "|cos(u1 at the step, u1 at the final step)|",
    "cos_u_prev": "|cos(u1 at the step, u1 at the previous analysed step)|",
    "cos_v_final": "|cos(v1, v1 at the final step)| (right singular vectors)",
    "cos_v_prev": "|cos(v1, v1 at the previous analysed step)|",
    "overlap_topk_final": "principal-direction overlap ||U_kᵀ U_k,final||²_F / k of the top-k left subspaces",
    "overlap_base_principal": "how much of u1 lies in the base weight's top singular directions",
}
DYNAMICS = {"spectral_norm": "σ1 of dW", "rank1_energy": "rank-1 energy σ1² / ||dW||²_F", "fro_norm": "||dW||_F"}


st.title("Rank-1 dynamics and alignment")
q = queries()
runs = q.alignment_runs()
if not runs:
    st.info("No alignment yet: it is computed by `rlvr analyze` once a run has two or more steps.")
    st.stop()
left, middle, right = st.columns(3)
run = pick("Run", runs, "run", container=left)
modules = q.alignment_modules(run)
group = pick("Show", ["median per module kind"] + modules, "group", container=middle)
per_layer = group in modules
dynamic = pick("Rank-1 measure", list(DYNAMICS), "dynamic", container=right)

st.subheader("Rank-1 dynamics")
if per_layer:
    rows = q.layer_measure_per_layer(run, group, dynamic)
    figure = px.line(
        rows, x="step", y="value", color="layer", markers=True, title=f"{DYNAMICS[dynamic]}: {group} per layer"
    )
else:
    rows = q.layer_measure_by_module(run, dynamic)
    figure = banded(rows, dynamic, f"{DYNAMICS[dynamic]} (median over layers, quartile bands) — {run}")
st.plotly_chart(figure, width="stretch")

st.subheader("Alignment of the rank-1 directions")
column = pick("Measure", list(MEASURES), "measure")
st.caption(f"{column}: {MEASURES[column]}")
if per_layer:
    curves = q.alignment_per_layer(run, group, column)
    figure = px.line(
        curves,
        x="step",
        y="value",
        color="layer",
        markers=True,
        title=f"{column}: {group} per layer",
        range_y=[0, 1.02],
    )
else:
    curves = q.alignment_by_module(run, column)
    figure = banded(curves, column, f"{column} (median over layers, quartile bands) — {run}")
    figure.update_layout(yaxis_range=[0, 1.02])
st.plotly_chart(figure, width="stretch")
grid = q.alignment_grid(run, column, group if per_layer else None)
grid = grid.pivot_table(index="layer", columns="step", values="value")
st.plotly_chart(
    px.imshow(
        grid,
        aspect="auto",
        labels={"color": column, "x": "step"},
        zmin=0,
        zmax=1,
        title=f"{column}, " + (group if per_layer else "mean over the modules of each layer"),
    ),
    width="stretch",
)
st.download_button(
    "Download the alignment curves (CSV)", curves.to_csv(index=False), f"alignment_{run}.csv", "text/csv"
)
st.download_button("Download the rank-1 dynamics (CSV)", rows.to_csv(index=False), f"rank1_{run}.csv", "text/csv")
