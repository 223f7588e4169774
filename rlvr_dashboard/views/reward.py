"""Reward vs test page: the logged training reward (rolling mean) above, and the held-out test score with
the accuracy on the training pool (where logged) below, on one step axis, of one or several runs (e.g. a
normal run against a periodic-substitution run), the tool's own evaluations with their 95% intervals, the
implicit-reward-overfitting monitor's verdict (a banner per run, every step in a table), the decoupling
summary of each run, and any other logged metric (KL, entropy, length) over steps."""

import plotly.express as px
import streamlit as st

from rlvr_dashboard.charts import (
    MONITOR_RULE,
    PALETTE,
    add_band,
    chart,
    monitor_banner,
    reward_test_figure,
    seed_band,
    steps_axis,
    two_panels,
    with_intervals,
)
from rlvr_dashboard.ui import escape, live, pick_many, queries, slider

st.title("Reward vs test")
q = queries()
summary = q.run_summaries()
if summary.empty:
    st.info("No training logs ingested yet: `rlvr logs PATH --run NAME` (the demo ingests its own).")
    live()
    st.stop()
chosen = pick_many("Runs", summary["run"].tolist(), "runs", summary["run"].tolist())
live(chosen)
window = slider("Reward: rolling mean over logged steps", 1, 50, 10, "window")
for row in summary[summary["run"].isin(chosen) & summary["test_metric"].isna()].itertuples():
    st.warning(
        f"{row.run}: no test metric, so only its reward is drawn: {escape(row.test_metric_note)}. Ingest the log "
        "again with the test metric named (Runs page, or `rlvr logs PATH --run NAME --test KEY`)."
    )
verdicts = q.decoupling(chosen)
for run, rows in verdicts.groupby("run"):
    flagged, text = monitor_banner(run, rows.iloc[-1])
    (st.warning if flagged else st.info)(escape(text))
series = q.reward_and_test(chosen)
evals = with_intervals(q.evaluations(chosen), samples="n")
figure = reward_test_figure(series, evals, window)
chart(figure, key="reward-and-test")
families = q.seed_families()
if families:
    st.subheader("Seeds")
    st.caption(
        "Runs named `<name>-s<seed>` are seeds of one experiment (`rlvr demo --seeds`): each family is drawn "
        "as the mean over its seeds with the 95% Student-t interval of that mean (reward: each seed's "
        "rolling mean first)."
    )
    shown_families = pick_many("Seed families", list(families), "families", list(families)[:2])
    logged = q.reward_and_test([run for f in shown_families for run in families[f]])
    logged = logged[(logged["name"] == logged["reward_metric"]) | (logged["name"] == logged["test_metric"])]
    logged["family"] = logged["run"].map({run: f for f in shown_families for run in families[f]})
    is_reward = logged["name"] == logged["reward_metric"]
    logged.loc[is_reward, "value"] = (
        logged[is_reward].groupby("run")["value"].transform(lambda v: v.rolling(window, min_periods=1).mean())
    )
    logged["series"] = is_reward.map({True: "reward", False: "test"})
    bands = seed_band(logged, "value", ["family", "series"])
    figure = two_panels(f"training reward (mean of {window})", "held-out score")
    for i, ((family, kind), band) in enumerate(bands.groupby(["family", "series"])):
        add_band(figure, band, f"{family}: {kind}", PALETTE[i % len(PALETTE)], row=2 if kind == "test" else 1)
    steps_axis(figure, bands["step"]).update_xaxes(title_text=None, row=1, col=1)
    chart(figure, key="seed-bands")
    st.dataframe(bands, hide_index=True, width="stretch")

st.subheader("Decoupling summary")
st.caption(
    "Spearman ρ between reward and test over the steps where both were logged; the reward's peak is "
    "that of its rolling mean. A low or negative ρ, or a test peak well before the reward peak, means "
    "the reward kept rising without the test."
)
st.dataframe(
    summary[summary["run"].isin(chosen)].drop(columns=["test_metric_note"]),
    hide_index=True,
    width="stretch",
    column_config={"spearman": st.column_config.NumberColumn(format="%.3f")},
)
with st.expander("The monitor at every held-out step"):
    st.caption(MONITOR_RULE)
    st.dataframe(verdicts, hide_index=True, width="stretch")
st.download_button("Download the curves (CSV)", series.to_csv(index=False), "reward_vs_test.csv", "text/csv")

st.subheader("Other logged metrics")
names = q.metric_names(chosen)
preferred = [n for n in names if "pool" in n] or names[:1]
shown = pick_many("Metrics", names, "metrics", preferred)
if shown:
    frame = q.metric_series(chosen, shown)
    figure = px.line(
        frame, x="step", y="value", color="run", facet_row="name", markers=True, height=max(300, 240 * len(shown))
    )
    figure.update_yaxes(matches=None, title="")
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    chart(steps_axis(figure, frame["step"]), key="other-metrics")
