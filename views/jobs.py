"""Jobs page: the queue with live progress, cancel, error messages and each job's log.

Work is only started through the job queue (`rlvr_core.jobs`; runs are added on the Runs page,
comparisons on the Substitution page); a worker (`rlvr worker`, or `rlvr serve`) runs it."""

import streamlit as st

import access
from rlvr_core import jobs
from rlvr_core.store import resolve_cache

st.title("Jobs")
cache = resolve_cache(None)


@st.fragment(run_every=2)
def queue() -> None:
    rows = jobs.list_jobs(cache)
    if not rows:
        st.info("No jobs yet: queue the demo or an analysis on the Runs page, then start a worker with "
                "`rlvr worker` (`rlvr serve` starts one).")
        return
    st.dataframe([{"id": j.id, "kind": j.kind, "state": j.state, "progress": round(j.progress, 3),
                   "message": j.error or j.message, "submitted by": j.submitted_by, "attempt": j.attempt}
                  for j in rows], hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1)})


queue()
by_id = {j.id: j for j in jobs.list_jobs(cache)}
if by_id:
    chosen = st.selectbox("Job", list(by_id), format_func=lambda i: f"{i} ({by_id[i].kind}, {by_id[i].state})")
    job = by_id[chosen]
    st.caption(" ".join([job.kind] + job.argv))
    if job.error:
        st.error(job.error)
    if job.state in ("queued", "running") and access.can_submit() and st.button("Cancel this job"):
        st.warning(f"{chosen}: {jobs.cancel(cache, chosen)}")
    st.code(jobs.log_tail(cache, chosen) or "(no output yet)", language=None)
