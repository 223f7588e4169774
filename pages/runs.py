"""Runs page: every cached run with its steps and what is analysed; add a run (framework and steps
detected, analysis queued), ingest a training log, queue the demo and watch it being built."""

import streamlit as st

from rlvr_core.errors import RlvrError
from rlvr_core.layout import discover_steps
from rlvr_core.store import open_cache, resolve_cache
from ui import demo_progress, submit_job

st.title("Runs")
cache = resolve_cache(None)
demo_progress(cache)
con = open_cache(cache)
runs = con.execute(
    "SELECT c.run, count(*) FILTER (WHERE NOT c.is_base) AS steps, list(c.step ORDER BY c.step) AS step_list, "
    "sum(c.n_analyzed) AS tensors_analysed, any_value(c.base_path) AS base, max(c.analyzed_at) AS last_analysed, "
    "(SELECT count(*) FROM metrics m WHERE m.run = c.run) AS logged_values, "
    "(SELECT count(*) FROM evaluations e WHERE e.run = c.run) AS evaluations "
    "FROM checkpoints c GROUP BY c.run ORDER BY c.run").df()
if runs.empty:
    st.info(f"No runs in the cache `{cache}` yet: queue the built-in demo (a small GRPO run trained on CPU in a "
            "few minutes), or add your own run below (`rlvr analyze RUN_DIR --base BASE_DIR` from a shell).")
    if st.button("Queue the demo", type="primary"):
        submit_job(cache, "demo", ["--if-missing"])
else:
    st.dataframe(runs, hide_index=True, width="stretch",
                 column_config={"step_list": st.column_config.ListColumn("step list")})
    with st.expander("Every analysed checkpoint"):
        st.dataframe(con.execute("SELECT run, step, is_base, n_analyzed AS tensors, layout, device, "
                                 "round(seconds, 1) AS seconds, analyzed_at, path FROM checkpoints "
                                 "ORDER BY run, step").df(), hide_index=True, width="stretch")

left, right = st.columns(2)
with left, st.form("add_run"):
    st.subheader("Add a run")
    run_dir = st.text_input("Run folder", key="run_dir", help="holding checkpoint-N/ (TRL), global_step_N/ (verl), "
                            "global_stepN_hf/ (OpenRLHF) or step_N/ folders")
    base_dir = st.text_input("Base model folder", key="base_dir", help="the model RL started from (step 0)")
    name = st.text_input("Name in the cache (optional)", key="run_name")
    check, queue = st.columns(2)
    checking = check.form_submit_button("Check")
    queuing = queue.form_submit_button("Queue the analysis", type="primary")
    if (checking or queuing) and run_dir:
        try:
            found = discover_steps(run_dir)
        except RlvrError as error:
            st.error(str(error))
        else:
            st.success(f"{found[0].layout} layout: {len(found)} checkpoints, steps "
                       + ", ".join(str(c.step) for c in found))
            if queuing and not base_dir:
                st.error("Give the base model folder too: every update dW is measured against it.")
            elif queuing:
                submit_job(cache, "analyze", [run_dir, "--base", base_dir, "--quiet"] + (["--run", name] if name else []))
with right, st.form("ingest"):
    st.subheader("Ingest a training log")
    log_path = st.text_input("Log file or folder", key="log_path",
                             help="verl JSONL, TRL trainer_state.json, OpenRLHF JSONL, TensorBoard events or CSV")
    log_run = st.text_input("Run name", key="log_run")
    reward = st.text_input("Reward metric (optional)", key="log_reward")
    test = st.text_input("Test metric (optional)", key="log_test")
    if st.form_submit_button("Queue the ingestion") and log_path and log_run:
        submit_job(cache, "logs", [log_path, "--run", log_run] + (["--reward", reward] if reward else [])
                   + (["--test", test] if test else []))
