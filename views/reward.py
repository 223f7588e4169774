"""Reward vs test page: the logged training reward and test accuracy over steps for one or several runs
(e.g. a normal run against a periodic-substitution run), the decoupling summary of each run, and the
accuracies of the tool's own evaluations overlaid."""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from rlvr_core.store import open_cache, resolve_cache
from ui import pick_many

st.title("Reward vs test")
con = open_cache(resolve_cache(None))
summary = con.execute("SELECT run, reward_metric, test_metric, spearman, reward_peak_step, test_peak_step, "
                      "n_shared_steps, log_format FROM run_summary ORDER BY run").df()
if summary.empty:
    st.info("No training logs ingested yet: `rlvr logs PATH --run NAME` (the demo ingests its own).")
    st.stop()
chosen = pick_many("Runs", summary["run"].tolist(), "runs", summary["run"].tolist())
window = st.slider("Reward: rolling mean over steps", 1, 50, 10)
series = con.execute(
    "SELECT m.run, m.step, m.name, m.value, s.reward_metric, s.test_metric FROM metrics m JOIN run_summary s "
    "USING (run) WHERE list_contains(?, m.run) AND (m.name = s.reward_metric OR m.name = s.test_metric) "
    "ORDER BY m.run, m.step", [chosen]).df()
evals = con.execute("SELECT run, step, variant, dataset, accuracy FROM evaluations WHERE list_contains(?, run) "
                    "ORDER BY run, variant, step", [chosen]).df()
figure = make_subplots(specs=[[{"secondary_y": True}]])
for run, frame in series.groupby("run"):
    reward = frame[frame["name"] == frame["reward_metric"]]
    test = frame[frame["name"] == frame["test_metric"]]
    figure.add_scatter(x=reward["step"], y=reward["value"].rolling(window, min_periods=1).mean(),
                       name=f"{run}: reward", mode="lines", secondary_y=False)
    figure.add_scatter(x=test["step"], y=test["value"], name=f"{run}: test (logged)", mode="lines+markers",
                       secondary_y=True)
for (run, variant, dataset), frame in evals.groupby(["run", "variant", "dataset"]):
    figure.add_trace(go.Scatter(x=frame["step"], y=frame["accuracy"], mode="markers", marker_symbol="diamond",
                                name=f"{run}: {variant} on {dataset} (evaluated)"), secondary_y=True)
figure.update_xaxes(title_text="step")
figure.update_yaxes(title_text="training reward", secondary_y=False)
figure.update_yaxes(title_text="test accuracy", secondary_y=True)
st.plotly_chart(figure, width="stretch")
st.subheader("Decoupling summary")
st.caption("Spearman ρ between reward and test accuracy over the steps where both were logged; a low or "
           "negative ρ, or a test peak well before the reward peak, means the reward kept rising without the test.")
st.dataframe(summary[summary["run"].isin(chosen)], hide_index=True, width="stretch")
st.download_button("Download the curves (CSV)", series.to_csv(index=False), "reward_vs_test.csv", "text/csv")
