"""Dashboard widgets shared by the pages (streamlit only; no math).

`pick` is a selectbox whose choice also lives in the page's URL (`?run=...&step=...`), so a view on a lab
server can be shared by copying the address bar. `submit_job` is the one way a page starts work (through
the job queue), and `demo_progress` shows a queued or running demo build while the user waits."""

from pathlib import Path

import streamlit as st

import access
from rlvr_core import jobs


def pick(label: str, options: list, key: str, default_index: int = 0, container=st, radio: bool = False,
         format_func=str):
    """A selectbox (or a horizontal radio) initialised from the URL query parameter `key` (when it names an
    option) that writes the chosen value back to the URL."""
    names = [str(o) for o in options]
    wanted = st.query_params.get(key)
    index = names.index(wanted) if wanted in names else min(default_index, max(len(options) - 1, 0))
    if radio:
        value = container.radio(label, options, index=index, key=f"url_{key}", horizontal=True, format_func=format_func)
    else:
        value = container.selectbox(label, options, index=index, key=f"url_{key}", format_func=format_func)
    if value is not None:
        st.query_params[key] = str(value)
    return value


def pick_many(label: str, options: list, key: str, default: list, container=st) -> list:
    """A multiselect whose choice lives in the URL as a comma-separated list (`?runs=a,b`)."""
    names = {str(o): o for o in options}
    wanted = st.query_params.get(key)
    chosen = [names[n] for n in wanted.split(",") if n in names] if wanted is not None else list(default)
    value = container.multiselect(label, options, default=chosen, key=f"url_{key}")
    st.query_params[key] = ",".join(str(v) for v in value)
    return value


def submit_job(cache: Path, kind: str, argv: list[str]) -> str | None:
    """Queue a job for the signed-in user and say so on the page; an identical queued or running job is
    reused. Refused (None) in read-only mode."""
    if not access.can_submit():
        st.error("This dashboard is read-only: it shows results but starts no jobs.")
        return None
    ident, new = jobs.submit(cache, kind, argv, submitted_by=access.user())
    if new:
        st.success(f"{kind} job {ident} queued: a worker (`rlvr worker`, or the one `rlvr serve` starts) runs it; "
                   "follow it on the Jobs page.")
    else:
        st.info(f"An identical {kind} job is already queued or running: {ident}.")
    return ident


def active_demo(cache: Path) -> jobs.Job | None:
    """The demo job that is queued or running, if any."""
    return next((j for j in jobs.list_jobs(cache) if j.kind == "demo" and j.state in ("queued", "running")), None)


@st.fragment(run_every=2)
def demo_progress(cache: Path) -> None:
    """While a demo job is queued or running: its state, latest message and log tail, refreshed every 2 s;
    when it ends, the whole page reruns so the new runs appear."""
    job = active_demo(cache)
    if job is None:
        if st.session_state.pop("watching_demo", False):
            st.rerun()
        return
    st.session_state["watching_demo"] = True
    if job.state == "queued":
        st.info(f"The demo (job {job.id}) is queued and waits for a worker: `rlvr worker` in a shell "
                "(`rlvr serve` starts one for you).")
        return
    status = st.status(f"Building the demo (job {job.id}): {job.message or 'starting'}", expanded=True, state="running")
    status.code(jobs.log_tail(cache, job.id, 1500) or "(no output yet)", language=None)
