"""Substitution page: start a rank-k comparison (through the job queue), see the recovery per step, and
drill down into one evaluation's problems and completions."""

from pathlib import Path

import plotly.express as px
import streamlit as st

import access
from rlvr_core.layout import locate_step
from rlvr_core.store import open_cache, resolve_cache
from ui import pick, submit_job

st.title("Rank-k substitution")
cache = resolve_cache(None)
con = open_cache(cache)
paths = con.execute("SELECT run, any_value(base_path) AS base, list(path ORDER BY step) AS paths FROM checkpoints "
                    "WHERE NOT is_base GROUP BY run ORDER BY run").fetchall()


def compare_form() -> None:
    """Queue a comparison of one analysed run's steps against their rank-k variants."""
    with st.form("compare"):
        st.caption("Evaluates the base, each chosen step and its rank-k variants on the same problems, as a job.")
        runs = {run: (base, steps) for run, base, steps in paths}
        run = pick("Run", list(runs) or ["(no analysed runs)"], "run")
        left, middle, right = st.columns(3)
        steps = left.text_input("Steps (comma-separated; empty: all)")
        ranks = middle.text_input("Ranks", "1")
        mode = right.selectbox("Mode", ["truncated", "norm-matched"])
        left, middle, right = st.columns(3)
        dataset = left.text_input("Dataset(s)", "arithmetic", key="dataset",
                                  help="arithmetic, a name in $RLVR_DATA, or a .jsonl path")
        n = middle.number_input("Samples per problem", 1, 64, 1)
        temperature = right.number_input("Temperature", 0.0, 2.0, 0.0, step=0.1)
        limit = left.number_input("Limit (0: all problems)", 0, 100000, 0, key="limit")
        max_new = middle.number_input("Max new tokens", 1, 32768, 1024, key="max_new_tokens")
        if not st.form_submit_button("Start the comparison") or run not in runs:
            return
    base, step_paths = runs[run]
    located = locate_step(step_paths[0])
    run_dir = access.allowed(str(located[1] if located else Path(step_paths[0]).parent), "Run folder")
    base = access.allowed(base, "Base model folder")
    files = [access.allowed(d, "Dataset") for d in dataset.split(",") if d.endswith(".jsonl") or "/" in d]
    if run_dir and base and all(files):
        argv = [str(run_dir), "--base", str(base), "--run", run, "--ranks", ranks, "--mode", mode, "--dataset",
                dataset, "--n", str(n), "--temperature", str(temperature), "--max-new-tokens", str(max_new)]
        submit_job(cache, "compare", argv + (["--steps", steps] if steps else []) + (["--limit", str(limit)] if limit else []))


if access.can_submit():
    compare_form()

recovery = con.execute("SELECT run, step, rank, mode, dataset, acc_base, acc_full, acc_rank, recovery, n_problems, "
                       "eval_id_rank FROM recovery ORDER BY run, dataset, mode, rank, step").df()
if recovery.empty:
    st.info("No comparisons yet: start one above (a worker runs it: `rlvr worker`).")
    st.stop()
recovery["variant"] = recovery["mode"] + " rank-" + recovery["rank"].astype(str) + " on " + recovery["dataset"]
st.plotly_chart(px.line(recovery, x="step", y="recovery", color="variant", facet_col="run", markers=True,
                        title="recovery = (acc rank-k − acc base) / (acc full − acc base)"), width="stretch")
st.dataframe(recovery.drop(columns=["eval_id_rank"]), hide_index=True, width="stretch")
st.download_button("Download (CSV)", recovery.to_csv(index=False), "recovery.csv", "text/csv")

st.subheader("Drill-down")
evals = con.execute("SELECT eval_id, run, step, variant, dataset, accuracy FROM evaluations "
                    "ORDER BY run, dataset, step, variant").df()
label = {row.eval_id: f"{row.run} step {row.step} {row.variant} on {row.dataset} ({row.accuracy:.3f})"
         for row in evals.itertuples()}
chosen = pick("Evaluation", list(label), "eval", format_func=label.get)
only_wrong = st.checkbox("Only wrong answers")
samples = con.execute("SELECT problem_id, sample, gold, extracted, correct, completion FROM eval_samples "
                      "WHERE eval_id = ? AND (NOT ? OR NOT correct) ORDER BY problem_id, sample",
                      [chosen, only_wrong]).df()
st.dataframe(samples, hide_index=True, width="stretch")
