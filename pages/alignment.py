"""Alignment page: how the rank-1 directions of the updates settle over training — |cos| between each
tensor's top left (or right) singular vector and the final step's (or the previous step's), per module
kind with quartile bands, and a layer x step heatmap."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from rlvr_core.store import open_cache, resolve_cache
from ui import pick

st.title("Alignment")
con = open_cache(resolve_cache(None))
runs = [r for (r,) in con.execute("SELECT DISTINCT run FROM alignment ORDER BY run").fetchall()]
if not runs:
    st.info("No alignment yet: it is computed by `rlvr analyze` once a run has two or more steps.")
    st.stop()
run = pick("Run", runs, "run")
column = pick("Measure", ["cos_u_final", "cos_u_prev", "cos_v_final", "cos_v_prev", "overlap_topk_final"], "measure")
st.caption("cos_u_final: |cos(u1 at step, u1 at the final step)|; _prev: with the previous step")
by_module = con.execute(f"SELECT module, step, {column}_median AS median, {column}_q1 AS q1, {column}_q3 AS q3 "
                        "FROM alignment_by_module WHERE run = ? ORDER BY module, step", [run]).df()
figure = go.Figure()
for module, frame in by_module.groupby("module"):
    band = list(frame["step"]) + list(frame["step"])[::-1]
    figure.add_scatter(x=band, y=list(frame["q3"]) + list(frame["q1"])[::-1], fill="toself", opacity=0.15,
                       line={"width": 0}, showlegend=False, hoverinfo="skip", name=f"{module} quartiles")
    figure.add_scatter(x=frame["step"], y=frame["median"], mode="lines+markers", name=module)
figure.update_layout(title=f"{column} (median over layers, quartile bands) — {run}", xaxis_title="step",
                     yaxis_title=column, yaxis_range=[0, 1.02])
st.plotly_chart(figure, width="stretch")
grid = con.execute(f"SELECT layer, step, avg({column}) AS value FROM alignment WHERE run = ? GROUP BY layer, step "
                   "ORDER BY layer, step", [run]).df().pivot_table(index="layer", columns="step", values="value")
st.plotly_chart(px.imshow(grid, aspect="auto", labels={"color": column, "x": "step"}, zmin=0, zmax=1,
                          title=f"{column}, mean over the modules of each layer"), width="stretch")
st.download_button("Download (CSV)", by_module.to_csv(index=False), f"alignment_{run}.csv", "text/csv")
