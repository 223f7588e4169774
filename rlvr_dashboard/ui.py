"""Dashboard widgets and services shared by the pages (streamlit only; no math, no SQL).

- `cache()` / `queries()`: the cache the settings name, and its named queries (views bound at each call).
- `pick`, `pick_many`, `toggle`, `slider`: widgets whose choice lives in the page's URL (`?run=...&step=...`,
  so a copied address reproduces the view) and in the session (so the run, step, target, tensor and module
  chosen on one page are the next page's too).
- `submit`: the one way a page starts work: a typed job request (`AnalyzeRequest`, `CompareRequest`,
  `DemoRequest`, `LogsRequest`, re-exported here), checked by its command's parser and queued for the
  signed-in user.
- `jobs_list`, `cancel_job`, `job_log`: the queue, for the Jobs page.
- `check_run_folder`: the framework layout and steps of a run folder, for the Runs page's form.
- `active_demo` / `demo_progress`: a queued or running demo build while the user waits.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from rlvr_core.cache import Cache, watches
from rlvr_core.cache import queue as jobs
from rlvr_core.cache.queries import Queries
from rlvr_core.cli import requests
from rlvr_core.cli.requests import (
    AnalyzeRequest,
    ClaimsRequest,
    CompareRequest,
    DemoRequest,
    LogsRequest,
    PredictRequest,
    WatchRequest,
)
from rlvr_core.errors import RlvrError
from rlvr_core.readers.layout import StepCheckpoint, discover_steps, locate_step

from . import access
from .text import clock, escape, took

__all__ = [
    "AnalyzeRequest",
    "ClaimsRequest",
    "CompareRequest",
    "DemoRequest",
    "LogsRequest",
    "PredictRequest",
    "RlvrError",
    "WatchRequest",
    "active_demo",
    "cache",
    "cancel_job",
    "check_run_folder",
    "clock",
    "demo_progress",
    "escape",
    "follow",
    "job_log",
    "jobs_list",
    "live",
    "may_cancel",
    "may_stop",
    "pick",
    "pick_many",
    "prediction_folder",
    "queries",
    "report_download",
    "run_folder_of",
    "slider",
    "stop_watch",
    "submit",
    "toggle",
    "took",
    "watches_list",
]


def cache() -> Cache:
    """The cache of this deployment (settings: $RLVR_CONFIG's `cache`, overridden by $RLVR_CACHE)."""
    return Cache(access.settings().cache)


def queries() -> Queries:
    """The named queries over the cache as it is now."""
    return cache().queries()


def _wanted(key: str) -> str | None:
    """The value asked for: the URL's (a shared link, a reload), else this session's last choice (made on
    another page: the run, step, target, tensor and module follow the user from page to page)."""
    if key in st.query_params:
        return st.query_params[key]
    return st.session_state.get("selection", {}).get(key)


def _remember(key: str, value: str) -> None:
    """Put a choice in the URL (so a copied address reproduces the view) and in the session (so the next
    page starts from it)."""
    if st.query_params.get(key) != value:
        st.query_params[key] = value
    st.session_state.setdefault("selection", {})[key] = value


def follow(key: str, leader: object) -> None:
    """Forget the choice of picker `key` whenever `leader` changes during a session (a new comparison
    finished, another comparison picked), so the picker starts from its default again; the first value seen
    is only recorded, so a shared link's choice holds."""
    seen = st.session_state.setdefault("followed", {})
    if key in seen and seen[key] != str(leader):
        st.query_params.pop(key, None)
        st.session_state.get("selection", {}).pop(key, None)
        st.session_state.pop(f"url_{key}", None)
    seen[key] = str(leader)


def pick(
    label: str,
    options: list,
    key: str,
    default_index: int = 0,
    container=st,
    radio: bool = False,
    format_func=str,
    slider: bool = False,
):
    """A selectbox (or a horizontal radio, or a slider over the options) starting from the URL's `key`, else
    the session's last choice, else `default_index`; the choice goes back to both."""
    names = [str(o) for o in options]
    wanted = _wanted(key)
    index = names.index(wanted) if wanted in names else min(default_index, max(len(options) - 1, 0))
    if key == "run" and options and key in st.query_params and wanted not in names:  # a link to a run not here
        st.warning(f"The link asks for run '{wanted}', which this cache does not hold: showing '{names[index]}'.")
    widget_key = f"url_{key}"
    if widget_key in st.session_state and str(st.session_state[widget_key]) not in names:
        del st.session_state[widget_key]  # a choice left by another page that this one does not offer
    if slider and options:
        value = container.select_slider(label, options, value=options[index], key=widget_key, format_func=format_func)
    elif radio:
        value = container.radio(label, options, index=index, key=widget_key, horizontal=True, format_func=format_func)
    else:
        value = container.selectbox(label, options, index=index, key=widget_key, format_func=format_func)
    if value is not None:
        _remember(key, str(value))
    return value


def pick_step_and_target(steps: list[int], targets: tuple[str, str], columns) -> tuple[int, str]:
    """The step (default: the last; step 0 shown as the base) and the target (W or dW: the base has only W)
    pickers every per-checkpoint page shows, in `columns` (two containers); `targets` gives their order."""
    step = pick(
        "Step",
        steps,
        "step",
        default_index=len(steps) - 1,
        container=columns[0],
        format_func=lambda s: f"{s} (base)" if s == 0 else str(s),
    )
    target = pick(
        "Target",
        ["W"] if step == 0 else list(targets),
        "target",
        container=columns[1],
        radio=True,
        format_func=lambda t: "dW (the update)" if t == "dW" else "W (the weight)",
    )
    return step, target


def pick_many(label: str, options: list, key: str, default: list, container=st) -> list:
    """A multiselect whose choice lives in the URL as a comma-separated list (`?runs=a,b`) and in the session."""
    names = {str(o): o for o in options}
    wanted = _wanted(key)
    chosen = [names[n] for n in wanted.split(",") if n in names] if wanted is not None else list(default)
    widget_key = f"url_{key}"
    if widget_key in st.session_state and any(str(v) not in names for v in st.session_state[widget_key]):
        del st.session_state[widget_key]
    value = container.multiselect(label, options, default=chosen, key=widget_key)
    _remember(key, ",".join(str(v) for v in value))
    return value


def toggle(label: str, key: str, default: bool = False, container=st) -> bool:
    """A checkbox whose state lives in the URL (`?key=1`) and the session."""
    wanted = _wanted(key)
    value = container.checkbox(label, value=default if wanted is None else wanted == "1", key=f"url_{key}")
    _remember(key, "1" if value else "0")
    return value


def slider(label: str, low: int, high: int, default: int, key: str, container=st, help: str | None = None) -> int:
    """An integer slider whose value lives in the URL and the session."""
    wanted = _wanted(key)
    start = int(wanted) if wanted is not None and wanted.isdigit() and low <= int(wanted) <= high else default
    value = container.slider(label, low, high, start, key=f"url_{key}", help=help)
    _remember(key, str(value))
    return value


def submit(request: requests.JobRequest) -> str | None:
    """Queue `request` for the signed-in user and say so on the page; an identical queued or running job is
    reused. Refused (None) in read-only mode, or with the command's own one-line error when the request
    is one it would reject."""
    if not access.can_submit():
        st.error("This dashboard is read-only: it shows results but starts no jobs.")
        return None
    try:
        ident, new = requests.submit(
            cache().root, request, submitted_by=access.user(), max_per_user=access.settings().max_queued_per_user
        )
    except RlvrError as error:
        st.error(escape(error))
        return None
    if isinstance(request, WatchRequest):
        st.success(
            f"Watching run {escape(ident)}"
            + ("" if new else " (it was watched already)")
            + ": each checkpoint is analysed once it is complete (`rlvr serve` runs the watcher and the workers); "
            "the Jobs page lists the watched runs and stops a watch."
        )
    elif new:
        st.success(
            f"{request.kind} job {ident} queued: a worker (`rlvr worker`, or the one `rlvr serve` starts) "
            "runs it; follow it on the Jobs page."
        )
    else:
        st.info(f"An identical {request.kind} job is already queued or running: {escape(ident)}.")
    return ident


def broken_notice() -> None:
    """In the sidebar of every page: cache files that cannot be read (left out of the views) and the fix."""
    broken = queries().broken()
    if broken.empty:
        return
    lines = [
        f"{r.run or 'evaluation ' + str(r.eval_id)}"
        + (f" step {int(r.step)}" if r.step == r.step and r.step is not None else "")
        + f": {r.path}"
        for r in broken.itertuples()
    ]
    st.sidebar.warning(
        "Broken cache files, left out of every view (analyse the run again to repair them):\n\n"
        + "\n\n".join(escape(line) for line in lines[:20])
    )


def jobs_list() -> list[jobs.Job]:
    """Every job of the queue, newest first; none (after saying why) when the queue cannot be read."""
    try:
        return jobs.list_jobs(cache().root)
    except RlvrError as error:
        st.error(escape(error))
        return []


def _may_act_on(owner: str | None) -> bool:
    """Whether the signed-in user may act on what `owner` submitted: their own, anything for an admin, and
    anything for anyone without auth (never in read-only mode)."""
    user = access.user()
    return access.can_submit() and (user is None or user == owner or user in access.settings().admins)


def may_cancel(job: jobs.Job) -> bool:
    """Whether the signed-in user may cancel `job`."""
    return _may_act_on(job.submitted_by)


def cancel_job(ident: str) -> str:
    """Cancel a job as the signed-in user (only their own, unless an admin); returns its state afterwards."""
    return jobs.cancel(cache().root, ident, access.user(), access.settings().admins)


def watches_list(only_watching: bool = False) -> list[watches.Watch]:
    """The registered watches (newest first); none (after saying why) when the queue cannot be read."""
    try:
        return watches.list_watches(cache().root, only_watching)
    except RlvrError as error:
        st.error(escape(error))
        return []


def may_stop(watch: watches.Watch) -> bool:
    """Whether the signed-in user may stop `watch`."""
    return _may_act_on(watch.submitted_by)


def stop_watch(run: str) -> str:
    """Stop watching `run` as the signed-in user (only their own watch, unless an admin)."""
    return watches.stop(cache().root, run, access.user(), access.settings().admins)


LIVE_EVERY = 3.0
"""Seconds between two looks of a page at the watches of the runs it shows."""


@st.fragment(run_every=LIVE_EVERY)
def live(runs: list[str] | None = None) -> None:
    """While a run the page shows (None: any run, for a page with nothing to show yet) is watched:
    "live: step N analysed m s ago", and a rerun of the whole page (selections kept: they live in the URL
    and the session) when a new step or log has been analysed."""
    shown = [w for w in watches_list(only_watching=True) if runs is None or w.run in runs]
    if not shown:
        return
    runs = runs if runs is not None else [w.run for w in shown]
    version = [(w.run, w.last_analysed_step, w.last_analysed_at, w.log_checked) for w in shown]
    key = "live_version:" + ",".join(sorted(runs))
    before = st.session_state.get(key)
    st.session_state[key] = version
    if before is not None and before != version:
        st.rerun(scope="app")
    now = time.time()
    parts = []
    for w in shown:
        done = (
            f"step {w.last_analysed_step} analysed {_ago(now - (w.last_analysed_at or now))} ago"
            if w.last_analysed_step is not None
            else "no step analysed yet"
        )
        parts.append(f"{w.run}: {done}" if len(runs) > 1 else done)
    st.caption(":green[● live]: " + escape("; ".join(parts)), help="the page follows the watched run, redrawing itself")


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def job_log(ident: str, max_bytes: int = 8000) -> str:
    """The end of a job's output."""
    return jobs.log_tail(cache().root, ident, max_bytes)


def report_download(runs: list[str]) -> None:
    """A run picker, "Prepare the report" and its download: the self-contained HTML `rlvr report` writes."""
    from rlvr_core.report.html import build_report

    left, middle, right = st.columns([2, 1, 1])
    run = left.selectbox("Report of run", runs, key="report_run", label_visibility="collapsed")
    if middle.button("Prepare the report", help="one HTML file: figures and tables, opens offline"):
        st.session_state["report_file"] = (run, build_report(cache(), run).encode())
    ready = st.session_state.get("report_file")
    if ready and ready[0] == run:
        right.download_button("Download the HTML", ready[1], file_name=f"{run}-report.html", mime="text/html")


def prediction_folder(run: str, from_step: int, to_step: int, rank: int) -> Path:
    """Where the dashboard has `rlvr predict` write a prediction (a folder the cache owns)."""
    return cache().prediction_dir(run, from_step, to_step, rank)


def check_run_folder(path: Path) -> list[StepCheckpoint] | None:
    """The checkpoints of a run folder, or None after showing why there are none."""
    try:
        return discover_steps(path)
    except RlvrError as error:
        st.error(escape(error))
        return None


def run_folder_of(step_path: str) -> str:
    """The run folder holding a checkpoint folder (its layout's parent)."""
    located = locate_step(step_path)
    return str(located[1] if located else Path(step_path).parent)


def active_demo() -> jobs.Job | None:
    """The demo job that is queued or running, if any."""
    return next((j for j in jobs_list() if j.kind == "demo" and j.state in ("queued", "running")), None)


@st.fragment(run_every=2)
def demo_progress() -> None:
    """While a demo job is queued or running: its state, latest message and log tail, refreshed every 2 s;
    when it ends, the whole page reruns so the new runs appear."""
    job = active_demo()
    if job is None:
        if st.session_state.pop("watching_demo", False):
            st.rerun()
        return
    st.session_state["watching_demo"] = True
    if job.state == "queued":
        st.info(
            f"The demo (job {job.id}) is queued and waits for a worker: `rlvr worker` in a shell "
            "(`rlvr serve` starts one for you)."
        )
        return
    status = st.status(
        f"Building the demo (job {job.id}): {escape(job.message or 'starting')}", expanded=True, state="running"
    )
    status.progress(min(max(job.progress, 0.0), 1.0), text=f"{job.progress:.0%} done")
    status.code(job_log(job.id, 1500) or "(no output yet)", language=None)
