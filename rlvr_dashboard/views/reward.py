"""Reward vs test page: the logged training reward and test accuracy over steps for one or several runs
(e.g. a normal run against a periodic-substitution run), the decoupling summary of each run, and the
accuracies of the tool's own evaluations overlaid."""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from rlvr_dashboard.ui import escape, pick_many, queries

st.title("Reward vs test")
q = queries()
summary = q.run_summaries()
if summary.empty:
    st.info("No training logs ingested yet: `rlvr logs PATH --run NAME` (the demo ingests its own).")
    st.stop()
chosen = pick_many("Runs", summary["run"].tolist(), "runs", summary["run"].tolist())
window = st.slider("Reward: rolling mean over steps", 1, 50, 10)
for row in summary[summary["run"].isin(chosen) & summary["test_metric"].isna()].itertuples():
    st.warning(
        f"{row.run}: no test metric, so only its reward is drawn: {escape(row.test_metric_note)}. Ingest the log "
        "again with the test metric named (Runs page, or `rlvr logs PATH --run NAME --test KEY`)."
    )
series = q.reward_and_test(chosen)
evals = q.evaluations(chosen)
figure = make_subplots(specs=[[{"secondary_y": True}]])
for run, frame in series.groupby("run"):
    reward = frame[frame["name"] == frame["reward_metric"]]
    test = frame[frame["name"] == frame["test_metric"]]
    figure.add_scatter(
        x=reward["step"],
        y=reward["value"].rolling(window, min_periods=1).mean(),
        name=f"{run}: reward",
        mode="lines",
        secondary_y=False,
    )
    figure.add_scatter(
        x=test["step"], y=test["value"], name=f"{run}: test (logged)", mode="lines+markers", secondary_y=True
    )
for (run, variant, dataset), frame in evals.groupby(["run", "variant", "dataset"]):
    figure.add_trace(
        go.Scatter(
            x=frame["step"],
            y=frame["accuracy"],
            mode="markers",
            marker_symbol="diamond",
            name=f"{run}: {variant} on {dataset} (evaluated)",
        ),
        secondary_y=True,
    )
figure.update_xaxes(title_text="step")
figure.update_yaxes(title_text="training reward", secondary_y=False)
figure.update_yaxes(title_text="test accuracy", secondary_y=True)
st.plotly_chart(figure, width="stretch")
st.subheader("Decoupling summary")
st.caption(
    "Spearman ρ between reward and test accuracy over the steps where both were logged; a low or "
    "negative ρ, or a test peak well before the reward peak, means the reward kept rising without the test."
)
st.dataframe(summary[summary["run"].isin(chosen)], hide_index=True, width="stretch")
st.download_button("Download the curves (CSV)", series.to_csv(index=False), "reward_vs_test.csv", "text/csv")
