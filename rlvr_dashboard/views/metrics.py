"""Metrics vs accuracy page: which spectral metric tracks the held-out metric over a run (the
`metric_correlations` view: Spearman's rho over steps and a permutation p-value, per module kind and
per tensor), ranked; and the chosen metric against the held-out metric, one point per step."""

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
    f"Spearman's ρ over the analysed steps between each metric (median over layers per module kind) and "
    f"{test_metric}, strongest first; p: two-sided permutation p-value (exact up to 8 steps). With few steps "
    "nothing can be significant (4 steps: p ≥ 1/12)."
)
st.dataframe(
    modules[["metric", "target", "module", "spearman", "p_value", "n_steps"]],
    hide_index=True,
    width="stretch",
    column_config={"spearman": st.column_config.NumberColumn("ρ", format="%.2f")},
)
labels = [f"{r.metric} of {r.target} · {r.module}" for r in modules.itertuples()]
chosen = pick("Metric", labels, "metric_pair")
row = modules.iloc[labels.index(chosen)]
frame = q.metric_vs_test(run, row["metric"], row["target"], row["module"])
name = f"{row['metric']} of {row['target']}, {row['module']} (median over layers)"
chart(metric_scatter(frame, name, test_metric, f"{name} vs {test_metric}: ρ = {row['spearman']:.2f}"))
with st.expander("Per tensor"):
    st.dataframe(rows[rows["level"] == "tensor"], hide_index=True, width="stretch")
