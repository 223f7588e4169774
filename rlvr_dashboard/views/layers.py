"""Layers page: per-layer norms, σ1, stable rank and rank-1 energy of one checkpoint's W or dW, as a
layer x module heatmap (modules in model order, integer layers) and a table. For a mixture of experts the
heatmap shows the median over each layer's experts by default (quartiles in the table), one expert on
request, or one module kind as a layer x expert grid."""

import streamlit as st

from rlvr_core.cache.queries import LAYER_MEASURES
from rlvr_core.cache.queries_research import OVERLAY_MEASURES
from rlvr_dashboard.charts import (
    TINY,
    caption,
    chart,
    heatmap,
    heatmap_chance,
    label,
    module_order,
    per_shape,
    per_shape_text,
)
from rlvr_dashboard.research_charts import runs_overlay, with_chance_band
from rlvr_dashboard.ui import escape, live, pick, pick_many, pick_step_and_target, queries

EXPERT_VIEWS = {"median": "median over experts", "one": "one expert", "grid": "layer × expert"}

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
title = f"{label(metric)} of {target}: {run}, step {step}"
levels = q.chance_levels(run, metric)  # what a Gaussian matrix of each shape gives (empty: no board yet)
chances = per_shape(levels)
experts = q.experts(run, step)
view = pick("Experts", list(EXPERT_VIEWS), "experts_view", radio=True, format_func=EXPERT_VIEWS.get) if experts else ""
if view == "median":
    layers = q.layers_over_experts(run, step, target, metric)
    chart(heatmap_chance(heatmap(layers, "median", metric, f"{title}, median over {len(experts)} experts"), chances))
    measures = ["q1", "median", "q3"]
elif view == "one":
    expert = pick("Expert", experts, "expert")
    layers = q.layers(run, step, target, expert)
    chart(heatmap_chance(heatmap(layers, metric, metric, f"{title}, expert {expert}"), chances))
    measures = list(LAYER_MEASURES)
else:
    layers = q.layers(run, step, target)
    measures = list(LAYER_MEASURES)
    if view == "grid":
        kinds = sorted(layers.loc[layers["expert"].notna(), "module"].unique())
        kind = pick("Expert module", kinds, "expert_module")
        layers = layers[layers["module"] == kind]
        chart(heatmap_chance(heatmap(layers, metric, metric, f"{title}, {kind}", x="expert"), chances))
    else:
        chart(heatmap_chance(heatmap(layers, metric, metric, title), chances))
st.caption(caption(metric))
if chances:
    st.caption(
        "What an i.i.d. Gaussian matrix of each shape gives (mean [range over 3 draws]): " + per_shape_text(chances)
    )
else:
    st.caption(
        "No chance level for this measure: a size depends on the update's scale (rank-1 energy and stable rank "
        "carry its shape)."
        if metric in ("fro_norm", "spectral_norm")
        else "No chance level yet: it comes with the run's claims board (`rlvr claims RUN`)."
    )
st.dataframe(
    layers if experts else layers.drop(columns=["expert"], errors="ignore"),  # a dense model has no experts
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format=TINY) for c in measures},
)
st.download_button("Download (CSV)", layers.to_csv(index=False), f"layers_{run}_{step}_{target}.csv", "text/csv")

st.subheader("Several runs on one chart")
board = q.claims(run)
compared = [r for r in (board["compare"].iloc[0].split(",") if not board.empty else []) if r in runs]
chosen = pick_many("Runs", runs, "overlay_runs", [run, *compared]) or [run]
left, middle, right = st.columns(3)
kind = pick("Module kind", module_order(q.layers(run, step, "dW")["module"].unique()), "overlay_module", container=left)
measure = pick("Per-layer measure", list(OVERLAY_MEASURES), "overlay_measure", format_func=label, container=middle)
last = "each run's last analysed step"
at = pick("At", [last, *q.shared_steps(chosen)], "overlay_step", container=right)
across = q.layer_measure_across_runs(chosen, measure, kind, None if at == last else int(at))
with_band = across.dropna(subset=["chance"])
band = None if with_band.empty else tuple(with_band.iloc[0][["chance", "chance_low", "chance_high"]])
of = "W" if measure == "alpha" else "dW"
title = f"{label(measure)} of {of}: {kind} per layer, " + ("each run's last step" if at == last else f"step {at}")
chart(with_chance_band(runs_overlay(across, measure, title), band, "a Gaussian matrix of this shape"))
steps_said = ", ".join(f"{r}: step {s}" for r, s in across.groupby("run")["step"].first().items())
st.caption(
    caption(measure) + f"  \n{escape(steps_said) or 'no run holds this measure'}. "
    + (f"Dashed, over its band: what an i.i.d. Gaussian matrix of this shape gives ({band[0]:.3g} "
       f"[{band[1]:.3g}, {band[2]:.3g}])." if band else
       "No chance line: it depends on each tensor's size or base spectrum (see the Claims page), or the run "
       "has no claims board yet.")
)  # fmt: skip
