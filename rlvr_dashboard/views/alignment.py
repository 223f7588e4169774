"""Rank-1 dynamics and alignment page: how the rank-1 components of the updates dW grow and settle over
training. σ1, rank-1 energy and ‖dW‖_F over steps; the linearity (R²) of each tensor's rank-1 trajectory;
|cos| between each tensor's top left (or right) singular vector and the final step's (or the previous
step's); principal-direction overlap (the top-k subspace with the final step's, and u1 with the base
weight's own top singular directions). Each per module kind (median with quartile bands) or per layer of
one module kind, and as a layer x step heatmap."""

import streamlit as st

from rlvr_core.cache.queries import ALIGNMENT_MEASURES
from rlvr_dashboard.charts import banded, caption, chart, heatmap, label, lines, module_order, with_chance
from rlvr_dashboard.ui import live, pick, queries

MEASURES = [m for m in ALIGNMENT_MEASURES if not m.endswith("_first")]
DYNAMICS = ["spectral_norm", "rank1_energy", "fro_norm"]

st.title("Rank-1 dynamics and alignment")
q = queries()
runs = q.alignment_runs()
if not runs:
    st.info("No alignment yet: it is computed by `rlvr analyze` once a run has two or more steps.")
    live()  # a watched run's first steps appear without a reload
    st.stop()
left, middle, right = st.columns(3)
run = pick("Run", runs, "run", container=left)
live([run])
modules = module_order(q.alignment_modules(run))
group = pick("Show", ["median per module kind", *modules], "group", container=middle)
per_layer = group in modules
dynamic = pick("Rank-1 measure", DYNAMICS, "dynamic", container=right, format_func=lambda m: f"{label(m)} of dW")

st.subheader("Rank-1 dynamics")
if per_layer:
    rows = q.layer_measure_per_layer(run, group, dynamic)
    chart(lines(rows, "value", "layer", dynamic, f"{label(dynamic)} of dW: {group} per layer"))
else:
    rows = q.layer_measure_by_module(run, dynamic)
    chart(banded(rows, dynamic, f"{label(dynamic)} of dW (median over layers, quartile bands): {run}"))
dynamics = q.rank1_dynamics(run)
if not dynamics.empty and dynamics["r2_linear"].notna().any():
    chart(heatmap(dynamics, "r2_linear", "r2_linear", f"linearity of each tensor's rank-1 trajectory: {run}"))
    st.caption(caption(dynamic, "r2_linear"))
else:
    st.caption(caption(dynamic) + "  \nThe linearity R² needs three or more analysed steps.")

st.subheader("Alignment of the rank-1 directions")
column = pick("Measure", MEASURES, "measure", format_func=label)
chance = q.alignment_chance(run, column, group if per_layer else None)
random_what = "random subspaces" if column.startswith("overlap") else "random directions"
if per_layer:
    curves = q.alignment_per_layer(run, group, column)
    chart(with_chance(lines(curves, "value", "layer", column, f"{label(column)}: {group} per layer"), chance,
                      random_what))  # fmt: skip
else:
    curves = q.alignment_by_module(run, column)
    figure = banded(curves, column, f"{label(column)} (median over layers, quartile bands): {run}")
    chart(with_chance(figure, chance, random_what))
grid = q.alignment_grid(run, column, group if per_layer else None)
chart(
    heatmap(
        grid,
        "value",
        column,
        f"{label(column)}, " + (group if per_layer else "mean over the modules of each layer"),
        x="step",
    )
)
st.caption(
    caption(column)
    + (f"  \nDashed: what {random_what} give (median over tensors: {chance:.3g}); for |cos| of unit vectors of "
       "length m, E|cos| = Γ(m/2)/(√π Γ((m+1)/2)) ≈ √(2/(πm)); for a top-k overlap, k/m." if chance else "")
)  # fmt: skip
st.download_button(
    "Download the alignment curves (CSV)", curves.to_csv(index=False), f"alignment_{run}.csv", "text/csv"
)
st.download_button("Download the rank-1 dynamics (CSV)", rows.to_csv(index=False), f"rank1_{run}.csv", "text/csv")
