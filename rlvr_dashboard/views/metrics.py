"""Metrics vs accuracy page: which spectral metric tracks the held-out metric over a run (the
`metric_correlations` view: Spearman's rho between step-to-step changes, permutation p-values adjusted over
the table by Benjamini-Hochberg, flags for constant and by-construction series; rho of the levels beside),
ranked; and the chosen metric against the held-out metric, one point per step."""

import streamlit as st

from rlvr_dashboard.charts import chart
from rlvr_dashboard.research_charts import metric_scatter
from rlvr_dashboard.ui import live, pick, queries

st.title("Metrics vs accuracy")
q = queries()
runs = q.correlated_runs()
if not runs:
    st.info(
        "No correlations yet: they need a run with analysed steps and an ingested held-out metric "
        "(`rlvr analyze`, then `rlvr logs PATH --run NAME`); `rlvr correlate RUN` recomputes them."
    )
    live()
    st.stop()
run = pick("Run", runs, "run")
live([run])
rows = q.metric_correlations(run)
modules = rows[rows["level"] == "module"].reset_index(drop=True)
test_metric = rows["test_metric"].iloc[0]
st.caption(
    f"Computed: Spearman's ρ between the step-to-step changes of each metric (median over layers per module "
    f"kind) and of {test_metric}, so a trend both share with training time does not count; p from permuting "
    "the changes, adjusted over the table (Benjamini–Hochberg); flagged series (constant, or 1 at the last "
    "step by construction) are listed last. ρ of the levels is shown beside for reference."
)
st.dataframe(
    modules[["metric", "target", "module", "spearman_change", "p_adjusted", "n_changes", "flag", "spearman",
             "p_value"]],
    hide_index=True,
    width="stretch",
    column_config={
        "spearman_change": st.column_config.NumberColumn("ρ of changes", format="%.2f"),
        "p_adjusted": st.column_config.NumberColumn("p (BH-adjusted)", format="%.3g"),
        "spearman": st.column_config.NumberColumn("ρ of levels", format="%.2f"),
    },
)  # fmt: skip
across = rows[rows["level"] == "seeds at matched steps"]
if len(across):
    st.subheader("Across the seeds, at matched steps")
    st.caption(
        "The run's seeds (runs named `<experiment>-s<N>`) compared with each other at the same steps: each "
        f"metric and {test_metric} ranked among the runs within each step, ρ of those ranks pooled over the "
        "steps; p from permuting the runs within each step, BH-adjusted: training time cannot make it significant."
    )
    st.dataframe(
        across[["metric", "target", "module", "spearman", "p_adjusted", "n_steps", "flag"]],
        hide_index=True,
        width="stretch",
        column_config={
            "spearman": st.column_config.NumberColumn("ρ at matched steps", format="%.2f"),
            "p_adjusted": st.column_config.NumberColumn("p (BH-adjusted)", format="%.3g"),
            "n_steps": st.column_config.NumberColumn("(run, step) pairs"),
        },
    )
labels = [f"{r.metric} of {r.target} · {r.module}" for r in modules.itertuples()]
chosen = pick("Metric", labels, "metric_pair")
row = modules.iloc[labels.index(chosen)]
frame = q.metric_vs_test(run, row["metric"], row["target"], row["module"])
name = f"{row['metric']} of {row['target']}, {row['module']} (median over layers)"
title = f"{name} vs {test_metric}: ρ of changes {row['spearman_change']:.2f}, ρ of levels {row['spearman']:.2f}"
chart(metric_scatter(frame, name, test_metric, title))
with st.expander("Per tensor"):
    st.dataframe(rows[rows["level"] == "tensor"], hide_index=True, width="stretch")
