"""Jobs page: queue the demo or an analysis, watch the queue, cancel, read a job's log.

Work is only started through the job queue (`rlvr_core.jobs`); a worker (`rlvr worker`) runs it."""

import streamlit as st

from rlvr_core import jobs
from rlvr_core.store import resolve_cache

st.title("Jobs")
cache = resolve_cache(None)


left, right = st.columns(2)
with left:
    if st.button("Queue the demo", help="train the built-in demo (a few minutes on CPU) and analyse it"):
        ident, new = jobs.submit(cache, "demo", ["--if-missing"])
        st.success(f"Demo job {ident} queued." if new else f"The demo job {ident} is already queued or running.")
with right, st.form("analyze"):
    run_dir = st.text_input("Run folder (checkpoint-N/, global_step_N/, ...)")
    base_dir = st.text_input("Base model folder")
    name = st.text_input("Name in the cache (optional)")
    if st.form_submit_button("Queue an analysis") and run_dir and base_dir:
        argv = [run_dir, "--base", base_dir, "--quiet"] + (["--run", name] if name else [])
        ident, new = jobs.submit(cache, "analyze", argv)
        st.success(f"Analysis job {ident} queued." if new else f"That analysis is already queued: {ident}.")


@st.fragment(run_every=2)
def queue() -> None:
    rows = jobs.list_jobs(cache)
    if not rows:
        st.info("No jobs yet: queue the demo above, then start a worker with `rlvr worker`.")
        return
    st.dataframe([{"id": j.id, "kind": j.kind, "state": j.state, "progress": round(j.progress, 3),
                   "message": j.error or j.message, "submitted by": j.submitted_by, "attempt": j.attempt}
                  for j in rows], hide_index=True, width="stretch")


queue()
by_id = {j.id: j for j in jobs.list_jobs(cache)}
if by_id:
    chosen = st.selectbox("Job", list(by_id), format_func=lambda i: f"{i} ({by_id[i].kind})")
    job = by_id[chosen]
    if job.state in ("queued", "running") and st.button("Cancel this job"):
        st.warning(f"{chosen}: {jobs.cancel(cache, chosen)}")
    st.code(jobs.log_tail(cache, chosen) or "(no output yet)", language=None)
