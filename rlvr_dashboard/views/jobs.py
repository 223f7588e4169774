"""Jobs page: the watched runs (last checkpoint seen, last analysed, next look, Stop watching for the
watch's submitter or an admin), the queue with live progress, and the chosen job's details (its command,
who submitted it, its error, its log, and Cancel for its submitter or an admin), all refreshed every 2 s.

Work is only started through the job queue (runs are added on the Runs page, comparisons on the
Substitution page); a worker (`rlvr worker`, or `rlvr serve`) runs it."""

import streamlit as st

from rlvr_dashboard.ui import (
    RlvrError,
    cancel_job,
    clock,
    escape,
    job_log,
    jobs_list,
    may_cancel,
    may_stop,
    pick,
    stop_watch,
    took,
    watches_list,
)

st.title("Jobs")


@st.fragment(run_every=2)
def watched() -> None:
    found = watches_list()
    if not found:
        return
    st.subheader("Watched runs")
    st.dataframe(
        [
            {
                "run": w.run,
                "state": w.state,
                "last seen": w.last_seen_step,
                "last analysed": w.last_analysed_step,
                "analysed at": clock(w.last_analysed_at),
                "steps waiting/queued/done/failed": "/".join(
                    str(w.steps[k] + w.steps.get(extra, 0))
                    for k, extra in (("waiting", ""), ("queued", "running"), ("done", ""), ("failed", "cancelled"))
                ),
                "next look": clock(w.next_poll) if w.state == "watching" else None,
                "message": w.message,
                "run folder": w.spec.run_dir,
                "submitted by": w.submitted_by,
            }
            for w in found
        ],
        hide_index=True,
        width="stretch",
    )
    stoppable = [w.run for w in found if w.state == "watching" and may_stop(w)]
    if stoppable:
        left, right = st.columns([3, 1])
        run = left.selectbox("Watched run", stoppable, key="stop_run", label_visibility="collapsed")
        if right.button("Stop watching"):
            try:
                st.warning(f"{escape(run)}: {stop_watch(run)}")
            except RlvrError as error:
                st.error(escape(error))
    st.subheader("Queue")


@st.fragment(run_every=2)
def queue() -> None:
    rows = jobs_list()
    if not rows:
        st.info(
            "No jobs yet: queue the demo or an analysis on the Runs page, then start a worker with "
            "`rlvr worker` (`rlvr serve` starts one)."
        )
        return
    st.dataframe(
        [
            {
                "id": j.id,
                "kind": j.kind,
                "state": j.state,
                "progress": round(j.progress, 3),
                "started": clock(j.started_at),
                "finished": clock(j.finished_at),
                "took": took(j),
                "message": j.error or j.message,
                "submitted by": j.submitted_by,
                "attempt": j.attempt,
                "worker": j.worker,
                "node": f"{j.node_ip} ({j.node_id[:12]})" if j.node_ip and j.node_id else None,
            }
            for j in rows
        ],
        hide_index=True,
        width="stretch",
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1)},
    )
    by_id = {j.id: j for j in rows}
    chosen = pick("Job", list(by_id), "job", format_func=lambda i: f"{i} ({by_id[i].kind})")  # its state: below
    job = by_id[chosen]
    st.code(" ".join(["rlvr", job.kind, *job.argv]), language=None)  # user text: shown as plain text
    st.text(
        f"submitted by {job.submitted_by}; {job.state}, {job.progress:.0%}"
        + (f"; started {clock(job.started_at)}" if job.started_at else "")
        + (f", finished {clock(job.finished_at)} ({took(job)})" if job.finished_at else "")
        + (f"; {job.message}" if job.message and not job.error else "")
    )
    if job.error:
        st.error(escape(job.error))
    if job.state in ("queued", "running") and may_cancel(job) and st.button("Cancel this job"):
        try:
            st.warning(f"{escape(chosen)}: {cancel_job(chosen)}")
        except RlvrError as error:
            st.error(escape(error))
    st.code(job_log(chosen) or "(no output yet)", language=None, wrap_lines=True)  # long lines wrapped, not cut


watched()
queue()
