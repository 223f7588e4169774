"""Rank-1 dynamics and alignment page: how the rank-1 components of the updates dW grow and settle over
training. sigma1, rank-1 energy and ||dW||_F over steps; |cos| between each tensor's top left (or right)
singular vector and the final step's (or the previous step's); principal-direction overlap (the top-k
subspace with the final step's, and u1 with the base weight's own top singular directions). Each per module
kind (median with quartile bands) or per layer of one module kind, and as a layer x step heatmap."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from rlvr_core.store import open_cache, resolve_cache
from ui import pick

MEASURES = {
    "cos_u_final": "|cos(u1 at the step, u1 at the final step)|",
    "cos_u_prev": "|cos(u1 at the step, u1 at the previous analysed step)|",
    "cos_v_final": "|cos(v1, v1 at the final step)| (right singular vectors)",
    "cos_v_prev": "|cos(v1, v1 at the previous analysed step)|",
    "overlap_topk_final": "principal-direction overlap ||U_kᵀ U_k,final||²_F / k of the top-k left subspaces",
    "overlap_base_principal": "how much of u1 lies in the base weight's top singular directions",
}
DYNAMICS = {"spectral_norm": "σ1 of dW", "rank1_energy": "rank-1 energy σ1² / ||dW||²_F", "fro_norm": "||dW||_F"}


def banded(frame, value: str, title: str) -> go.Figure:
    """Median lines with shaded quartile bands, one per module kind (columns module, step, median, q1, q3)."""
    figure = go.Figure()
    palette = px.colors.qualitative.Plotly
    for i, (module, part) in enumerate(frame.groupby("module")):
        color = palette[i % len(palette)]
        band = list(part["step"]) + list(part["step"])[::-1]
        figure.add_scatter(x=band, y=list(part["q3"]) + list(part["q1"])[::-1], fill="toself", opacity=0.15,
                           fillcolor=color, line={"width": 0}, showlegend=False, hoverinfo="skip",
                           name=f"{module} quartiles")
        figure.add_scatter(x=part["step"], y=part["median"], mode="lines+markers", name=module, line={"color": color})
    figure.update_layout(title=title, xaxis_title="step", yaxis_title=value)
    return figure


st.title("Rank-1 dynamics and alignment")
con = open_cache(resolve_cache(None))
runs = [r for (r,) in con.execute("SELECT DISTINCT run FROM alignment ORDER BY run").fetchall()]
if not runs:
    st.info("No alignment yet: it is computed by `rlvr analyze` once a run has two or more steps.")
    st.stop()
left, middle, right = st.columns(3)
run = pick("Run", runs, "run", container=left)
modules = [m for (m,) in con.execute("SELECT DISTINCT module FROM alignment WHERE run = ? ORDER BY module", [run]).fetchall()]
group = pick("Show", ["median per module kind"] + modules, "group", container=middle)
per_layer = group in modules
dynamic = pick("Rank-1 measure", list(DYNAMICS), "dynamic", container=right)

st.subheader("Rank-1 dynamics")
if per_layer:
    rows = con.execute(f"SELECT layer, step, {dynamic} AS value FROM layers WHERE run = ? AND target = 'dW' AND module = ? "
                       "ORDER BY layer, step", [run, group]).df()
    figure = px.line(rows, x="step", y="value", color="layer", markers=True, title=f"{DYNAMICS[dynamic]}: {group} per layer")
else:
    rows = con.execute(f"SELECT module, step, quantile_cont({dynamic}, 0.25) AS q1, median({dynamic}) AS median, "
                       f"quantile_cont({dynamic}, 0.75) AS q3 FROM layers WHERE run = ? AND target = 'dW' "
                       "GROUP BY module, step ORDER BY module, step", [run]).df()
    figure = banded(rows, dynamic, f"{DYNAMICS[dynamic]} (median over layers, quartile bands) — {run}")
st.plotly_chart(figure, width="stretch")

st.subheader("Alignment of the rank-1 directions")
column = pick("Measure", list(MEASURES), "measure")
st.caption(f"{column}: {MEASURES[column]}")
if per_layer:
    curves = con.execute(f"SELECT layer, step, {column} AS value FROM alignment WHERE run = ? AND module = ? "
                         "ORDER BY layer, step", [run, group]).df()
    figure = px.line(curves, x="step", y="value", color="layer", markers=True, title=f"{column}: {group} per layer",
                     range_y=[0, 1.02])
else:
    curves = con.execute(f"SELECT module, step, {column}_median AS median, {column}_q1 AS q1, {column}_q3 AS q3 "
                         "FROM alignment_by_module WHERE run = ? ORDER BY module, step", [run]).df()
    figure = banded(curves, column, f"{column} (median over layers, quartile bands) — {run}")
    figure.update_layout(yaxis_range=[0, 1.02])
st.plotly_chart(figure, width="stretch")
where = "AND module = ?" if per_layer else ""
grid = con.execute(f"SELECT layer, step, avg({column}) AS value FROM alignment WHERE run = ? {where} GROUP BY layer, step "
                   "ORDER BY layer, step", [run] + ([group] if per_layer else [])).df()
grid = grid.pivot_table(index="layer", columns="step", values="value")
st.plotly_chart(px.imshow(grid, aspect="auto", labels={"color": column, "x": "step"}, zmin=0, zmax=1,
                          title=f"{column}, " + (group if per_layer else "mean over the modules of each layer")),
                width="stretch")
st.download_button("Download the alignment curves (CSV)", curves.to_csv(index=False), f"alignment_{run}.csv", "text/csv")
st.download_button("Download the rank-1 dynamics (CSV)", rows.to_csv(index=False), f"rank1_{run}.csv", "text/csv")
