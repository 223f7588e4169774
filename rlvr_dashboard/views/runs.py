"""Runs page, the start page: what the tool answers and which page answers what (`guide`); every cached
run with its steps and what is analysed; add a run (framework and steps detected, analysis queued, or "keep
watching": the server follows the run as it trains), ingest a training log, queue the demo and watch it
being built."""

import streamlit as st

from rlvr_dashboard import access
from rlvr_dashboard.guide import page_guide
from rlvr_dashboard.ui import (
    AnalyzeRequest,
    DemoRequest,
    LogsRequest,
    WatchRequest,
    active_demo,
    cache,
    check_run_folder,
    demo_progress,
    escape,
    live,
    queries,
    report_download,
    submit,
)

st.title("Runs")
demo_progress()
q = queries()
runs = q.runs_overview()
page_guide(expanded=runs.empty)  # the start page: open while the cache is empty
if runs.empty:
    live()
    building = active_demo() is not None
    if building:
        st.info(
            f"No runs in the cache `{cache().root}` yet: the demo is being built (above); its runs appear here "
            "when it is done. Meanwhile you can add your own run below."
        )
    else:
        st.info(
            f"No runs in the cache `{cache().root}` yet: queue the built-in demo (a small GRPO run trained on CPU "
            "in a few minutes), or add your own run below (`rlvr analyze RUN_DIR --base BASE_DIR` from a shell)."
        )
    if access.can_submit() and not building and st.button("Queue the demo", type="primary"):
        submit(DemoRequest(if_missing=True))
else:
    st.caption(
        "Overview: steps analysed (the base is step 0), model size, the held-out score first and last "
        "logged (its metric named), the training reward (mean of the last 10 logged steps), Spearman ρ "
        "between reward and test, the implicit-reward-overfitting monitor's last verdict, and the tool's own "
        "evaluations."
    )
    st.dataframe(
        runs,
        hide_index=True,
        width="stretch",
        column_order=[
            "run",
            "layout",
            "steps",
            "step_list",
            "parameters",
            "test_metric",
            "test_first",
            "test_final",
            "final_reward",
            "spearman",
            "monitor",
            "monitor_since",
            "evaluations",
            "logged_values",
            "tensors_analysed",
            "base",
            "last_analysed",
        ],
        column_config={
            "step_list": st.column_config.ListColumn("step list"),
            "parameters": st.column_config.NumberColumn("parameters", format="compact"),
            "test_first": st.column_config.NumberColumn("test (first)", format="%.3f"),
            "test_final": st.column_config.NumberColumn("test (last)", format="%.3f"),
            "final_reward": st.column_config.NumberColumn("reward (last 10)", format="%.3f"),
            "spearman": st.column_config.NumberColumn("ρ reward vs test", format="%.2f"),
            "monitor": st.column_config.TextColumn(
                "monitor", help="the implicit-reward-overfitting monitor's last verdict (see Reward vs test)"
            ),
            "monitor_since": st.column_config.NumberColumn("flag since step", format="%d"),
        },
    )
    live(runs["run"].tolist())
    report_download(runs["run"].tolist())
    with st.expander("Every analysed checkpoint"):
        st.caption(
            "files: `gone` when the checkpoint folder was deleted after its analysis (a trainer's "
            "save_total_limit, say): its results stay in the cache. weights_dtype / weights_source: the precision "
            "each checkpoint was read in (F32 from verl's fsdp-shards is exact; BF16 from an export rounds small "
            "updates to 0); dw_zero_fraction: dW's share of exactly-zero entries (near 0 for an exact update; a "
            "large share means the update was rounded away)."
        )
        st.dataframe(q.checkpoints(), hide_index=True, width="stretch")

if not access.can_submit():
    st.caption("Read-only dashboard: runs are added by the server's admins.")
    st.stop()
roots = access.settings().roots
if roots:
    st.caption("Runs and models are read only under the data roots: " + escape(", ".join(str(r) for r in roots)))
    st.selectbox(
        "Runs found under the data roots",
        access.runs_under_roots(),
        index=None,
        key="found_run",
        placeholder="pick one",
        on_change=lambda: st.session_state.update(run_dir=st.session_state["found_run"] or ""),
    )
left, right = st.columns(2)
with left, st.form("add_run"):
    st.subheader("Add a run")
    run_dir = st.text_input(
        "Run folder",
        key="run_dir",
        help="holding checkpoint-N/ (TRL), global_step_N/ (verl), global_stepN_hf/ (OpenRLHF) or step_N/ folders",
    )
    base_dir = st.text_input(
        "Base model folder", key="base_dir", help="the model RL started from (step 0): a folder, or a Hub id org/name"
    )
    name = st.text_input("Name in the cache (optional)", key="run_name")
    keep = st.checkbox(
        "Keep watching",
        key="keep_watching",
        help="the server analyses each new checkpoint once the trainer has written it completely (and "
        "ingests the log below as it grows), until the watch is stopped on the Jobs page; survives restarts",
    )
    watch_log = st.text_input(
        "Training log to follow (optional, when watching)", key="watch_log", help="file or folder, as for ingestion"
    )
    check, queue = st.columns(2)
    checking = check.form_submit_button("Check")
    queuing = queue.form_submit_button("Queue the analysis", type="primary")
    if (checking or queuing) and not run_dir:
        st.error("Give the run folder: the folder holding the run's checkpoint folders.")
    run_path = access.allowed(run_dir, "Run folder") if (checking or queuing) and run_dir else None
    watching = keep and queuing and run_path is not None  # a watched run may have no checkpoint yet
    steps = check_run_folder(run_path) if run_path and not watching else None
    if steps:
        st.success(
            f"{steps[0].layout} layout: {len(steps)} checkpoints, steps " + ", ".join(str(c.step) for c in steps)
        )
    base_path = access.model(base_dir, "Base model folder") if base_dir and (steps or watching) else None
    log_file = access.allowed(watch_log, "Log", "file or folder", must_exist=False) if watching and watch_log else None
    if queuing and (steps or watching) and not base_dir:
        st.error("Give the base model folder too: every update dW is measured against it.")
    elif watching and base_path and (log_file or not watch_log):
        log = str(log_file) if log_file else None
        submit(WatchRequest(run_dir=str(run_path), base=str(base_path), run=name or None, log=log))
    elif queuing and steps and base_path:
        submit(AnalyzeRequest(run_dir=str(run_path), base=str(base_path), quiet=True, run=name or None))
with right, st.form("ingest"):
    st.subheader("Ingest a training log")
    log_path = st.text_input(
        "Log file or folder",
        key="log_path",
        help="verl JSONL, TRL trainer_state.json, OpenRLHF JSONL, TensorBoard events or CSV",
    )
    log_run = st.text_input("Run name", key="log_run")
    reward = st.text_input("Reward metric (optional)", key="log_reward")
    test = st.text_input("Test metric (optional)", key="log_test")
    if st.form_submit_button("Queue the ingestion"):
        missing = [
            what for what, value in (("the log file or folder", log_path), ("the run name", log_run)) if not value
        ]
        log_file = None if missing else access.allowed(log_path, "Log", "file or folder")
        if missing:
            st.error("Give " + " and ".join(missing) + ".")
        elif log_file:
            submit(LogsRequest(path=str(log_file), run=log_run, reward=reward or None, test=test or None))
