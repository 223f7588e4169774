"""Substitution page: start a rank-k comparison (through the job queue), see the recovery per step, and
drill down into one evaluation's problems and completions."""

import plotly.express as px
import streamlit as st

from rlvr_dashboard import access
from rlvr_dashboard.ui import CompareRequest, escape, pick, queries, run_folder_of, submit

st.title("Rank-k substitution")
q = queries()
sources = {run: (base, steps) for run, base, steps in q.run_sources()}


def compare_form() -> None:
    """Queue a comparison of one analysed run's steps against their rank-k variants."""
    with st.form("compare"):
        st.caption("Evaluates the base, each chosen step and its rank-k variants on the same problems, as a job.")
        run = pick("Run", list(sources) or ["(no analysed runs)"], "run")
        left, middle, right = st.columns(3)
        steps = left.text_input("Steps (comma-separated; empty: all)")
        ranks = middle.text_input("Ranks", "1")
        mode = right.selectbox("Mode", ["truncated", "norm-matched"])
        left, middle, right = st.columns(3)
        dataset = left.text_input(
            "Dataset(s)", "arithmetic", key="dataset", help="arithmetic, a name in $RLVR_DATA, or a .jsonl path"
        )
        n = middle.number_input("Samples per problem", 1, 64, 1)
        temperature = right.number_input("Temperature", 0.0, 2.0, 0.0, step=0.1)
        limit = left.number_input("Limit (0: all problems)", 0, 100000, 0, key="limit")
        max_new = middle.number_input("Max new tokens", 1, 32768, 1024, key="max_new_tokens")
        if not st.form_submit_button("Start the comparison") or run not in sources:
            return
    base_path, step_paths = sources[run]
    run_dir = access.allowed(run_folder_of(step_paths[0]), "Run folder")
    base = access.allowed(base_path, "Base model folder")
    # a dataset given as a file is passed on as the path it was checked as; names are looked up by the job
    names = [d.strip() for d in dataset.split(",") if d.strip()]
    resolved = [access.allowed(d, "Dataset", "file") if d.endswith(".jsonl") or "/" in d else d for d in names]
    if run_dir and base and all(resolved):
        submit(
            CompareRequest(
                run_dir=str(run_dir),
                base=str(base),
                run=run,
                ranks=ranks,
                mode=mode,
                dataset=",".join(str(d) for d in resolved),
                n=int(n),
                temperature=float(temperature),
                max_new_tokens=int(max_new),
                steps=steps or None,
                limit=int(limit) or None,
            )
        )


if access.can_submit():
    compare_form()

recovery = q.recovery()
if recovery.empty:
    st.info("No comparisons yet: start one above (a worker runs it: `rlvr worker`).")
    st.stop()
recovery["variant"] = recovery["mode"] + " rank-" + recovery["rank"].astype(str) + " on " + recovery["dataset"]
st.plotly_chart(
    px.line(
        recovery,
        x="step",
        y="recovery",
        color="variant",
        facet_col="run",
        markers=True,
        error_y="error_plus",
        error_y_minus="error_minus",
        title="recovery = (acc rank-k − acc base) / (acc full − acc base), with 95% paired-bootstrap intervals",
    ),
    width="stretch",
)
missing = recovery[recovery["recovery"].isna()]
for row in missing.itertuples():
    st.warning(escape(f"{row.run} step {row.step} {row.variant}: no recovery: {row.recovery_note}"))
st.dataframe(recovery.drop(columns=["eval_id_rank", "error_plus", "error_minus"]), hide_index=True, width="stretch")
st.download_button("Download (CSV)", recovery.to_csv(index=False), "recovery.csv", "text/csv")

st.subheader("Drill-down")
evals = q.evaluations()
label = {
    row.eval_id: f"{row.run} step {row.step} {row.variant} on {row.dataset} ({row.accuracy:.3f})"
    for row in evals.itertuples()
}
chosen = pick("Evaluation", list(label), "eval", format_func=label.get)
only_wrong = st.checkbox("Only wrong answers")
st.dataframe(q.eval_samples(chosen, only_wrong), hide_index=True, width="stretch")
