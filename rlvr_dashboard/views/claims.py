"""Claims page: every parameter-space claim about RLVR checked on one run — the measure (median over tensors,
95% interval), what chance gives, and the verdict by the written rule (`rlvr claims`; docs "The claims
board"). Pick a run, optionally runs from the same base to compare u1 with; a button queues the board's
rebuild with them (`claims` job)."""

import streamlit as st

from rlvr_dashboard import access
from rlvr_dashboard.charts import chart
from rlvr_dashboard.research_charts import claims_figure
from rlvr_dashboard.ui import ClaimsRequest, live, pick, queries, submit

st.title("Claims board")
q = queries()
runs = list(q.runs())
boards = set(q.claims_runs())
if not runs:
    st.info("No analysed run yet: see the Runs page.")
    live()
    st.stop()
left, right = st.columns([1, 2])
run = pick("Run", runs, "run", container=left)
live([run])
if access.can_submit():  # read-only dashboards show the board and start nothing
    others = [r for r in runs if r != run]
    compare = right.multiselect("Compare u1 with (runs from the same base)", others, key="compare")
    if right.button("Rebuild the board" + (" with these runs" if compare else "")):
        submit(ClaimsRequest(run=run, compare=tuple(compare)))
if run not in boards:
    st.info(f"Run '{run}' has no claims board yet: `rlvr analyze` builds it, or press the button above.")
    st.stop()
rows = q.claims(run)
step = int(rows["step"].iloc[0])
st.caption(
    f"At step {step}, the run's last analysed step. Each measure is the median over tensors with its 95% "
    "interval; the grey band is what chance gives (an i.i.d. Gaussian update or matrix of the same shape and "
    "norm: closed forms, or the tool's own code on seeded draws). Verdict rules: docs/questions/claims-board.md."
)
chart(claims_figure(rows, f"Claims on run '{run}': this run against chance"))
shown = rows[["claim_id", "verdict", "claim", "citation", "measure", "value", "low", "high", "n", "chance",
              "chance_low", "chance_high", "reason"]]  # fmt: skip
st.dataframe(shown, hide_index=True, width="stretch")
