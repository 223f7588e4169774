"""Substitution page: start a rank-k comparison (checked against the cache and priced before it is
queued), see the recovery per step with its 95% interval (or why it has none) and every accuracy with
its interval, and drill down into one evaluation's problems and completions."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from rlvr_dashboard import access
from rlvr_dashboard.charts import PALETTE, accuracy_bands, add_band, chart, seed_band, steps_axis, with_intervals
from rlvr_dashboard.forms import check_compare
from rlvr_dashboard.paired import comparison_label, paired_section
from rlvr_dashboard.ui import CompareRequest, escape, follow, live, pick, queries, run_folder_of, submit, toggle

st.title("Rank-k substitution")
q = queries()
sources = {run: (base, steps) for run, base, steps in q.run_sources()}
live(list(sources))


def recipe_inputs() -> tuple[str, str]:
    """Where the tensors that are not substituted come from, and which modules are (a regex)."""
    left, right = st.columns([1, 2])
    keep = left.selectbox("Other tensors from", ["base", "step"], key="keep", help="the tensors not substituted")
    modules = right.text_input(
        "Modules (regex on tensor names; empty: every block weight)",
        key="modules",
        help="e.g. mlp or self_attn\\.(q|k)_proj: which modules' rank-k parts carry the gain",
    )
    return keep, modules


def compare_form() -> None:
    """Queue a comparison of one analysed run's steps against their rank-k variants."""
    with st.form("compare"):
        st.caption("Evaluates the base, each chosen step and its rank-k variants on the same problems, as a job.")
        run = pick("Run", list(sources) or ["(no analysed runs)"], "run")
        left, middle, right = st.columns(3)
        steps = left.text_input("Steps (comma-separated; empty: all analysed steps)")
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
        alpha = right.number_input("Alpha (scale of the rank-k term)", 0.0, 10.0, 1.0, step=0.1, key="alpha")
        keep, modules = recipe_inputs()
        if not st.form_submit_button("Start the comparison") or run not in sources:
            return
    base_path, step_paths = sources[run]
    run_steps = [s for s in q.steps(run) if s != 0]
    check = check_compare(steps, ranks, dataset, int(limit), int(n), int(max_new), run_steps, q.run_settings(run))
    for error in check.errors:
        st.error(escape(error))
    for note in check.notes:
        st.info(escape(note))
    run_dir = access.allowed(run_folder_of(step_paths[0]), "Run folder")
    base = access.allowed(base_path, "Base model folder")
    if check.errors or not (run_dir and base):
        return
    st.caption(
        f"Cost: {check.evaluations} evaluations x {check.problems} problems x {int(n)} samples, at most "
        f"{check.generated_tokens:,} generated tokens."
    )
    submit(
        CompareRequest(
            run_dir=str(run_dir),
            base=str(base),
            run=run,
            ranks=",".join(map(str, check.ranks)),
            mode=mode,
            dataset=",".join(check.datasets),
            n=int(n),
            temperature=float(temperature),
            max_new_tokens=int(max_new),
            steps=steps.strip() or None,
            limit=int(limit) or None,
            alpha=float(alpha),
            keep=keep,
            modules=modules.strip() or None,
        )
    )


if access.can_submit():
    compare_form()

recovery = q.recovery()
if recovery.empty:
    st.info("No comparisons yet: start one above (a worker runs it: `rlvr worker`).")
    st.stop()
recovery["variant"] = [comparison_label(row) for row in recovery.itertuples()]
figure = px.line(
    recovery,
    x="step",
    y="recovery",
    color="variant",
    line_dash="keep",
    symbol="keep",
    facet_col="run",
    markers=True,
    error_y="error_plus",
    error_y_minus="error_minus",
    title="recovery = (acc rank-k − acc base) / (acc full − acc base), 95% paired-bootstrap intervals",
)
figure.for_each_trace(lambda t: t.update(name=t.name.rsplit(", ", 1)[0]))  # keep is in the label already
figure.update_layout(legend_title_text="")
chart(steps_axis(figure, recovery["step"]), key="recovery")
for row in recovery[recovery["recovery"].isna()].itertuples():
    st.warning(escape(f"{row.run} step {row.step} {row.variant}: no recovery: {row.recovery_note}"))
st.dataframe(
    recovery,
    hide_index=True,
    width="stretch",
    column_order=[
        "run",
        "step",
        "rank",
        "mode",
        "keep",
        "modules",
        "alpha",
        "dataset",
        "acc_base",
        "acc_full",
        "acc_rank",
        "recovery",
        "recovery_low",
        "recovery_high",
        "recovery_note",
        "gain_low",
        "gain_high",
        "n_problems",
        "samples",
        "gained_vs_full",
        "lost_vs_full",
        "mcnemar_full_p",
        "gained_vs_base",
        "lost_vs_base",
        "mcnemar_base_p",
    ],
    column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in (
            "acc_base",
            "acc_full",
            "acc_rank",
            "recovery",
            "recovery_low",
            "recovery_high",
            "gain_low",
            "gain_high",
            "mcnemar_full_p",
            "mcnemar_base_p",
        )
    },
)
st.download_button("Download (CSV)", recovery.to_csv(index=False), "recovery.csv", "text/csv")

families = {f: runs for f, runs in q.seed_families().items() if recovery["run"].isin(runs).any()}
if families:
    st.subheader("Seeds")
    st.caption(
        "Runs named `<name>-s<seed>` are seeds of one experiment: the mean recovery over the seeds whose gain "
        "was real (the others have none, see the table) with the 95% Student-t interval of that mean; below, "
        "the accuracies of the full model and of each variant, defined for every seed."
    )
    members = {run: f for f, runs in families.items() for run in runs}
    seeded = recovery[recovery["run"].isin(members)].assign(family=lambda f: f["run"].map(members))
    bands = seed_band(seeded, "recovery", ["family", "variant"])
    figure = go.Figure()
    for i, ((family, variant), band) in enumerate(bands.groupby(["family", "variant"])):
        add_band(figure, band, f"{family}: {variant}", PALETTE[i % len(PALETTE)])
    figure.update_layout(title="recovery over seeds", yaxis_title="recovery")
    chart(steps_axis(figure, bands["step"]), key="seed-recovery")
    st.dataframe(bands, hide_index=True, width="stretch")
    accuracies = accuracy_bands(seeded)
    figure = go.Figure()
    for i, ((family, model), band) in enumerate(accuracies.groupby(["family", "model"])):
        add_band(figure, band, f"{family}: {model}", PALETTE[i % len(PALETTE)])
    figure.update_layout(title="accuracy of the full model and each variant over seeds", yaxis_title="accuracy")
    chart(steps_axis(figure, accuracies["step"]), key="seed-accuracy")

st.subheader("Accuracies")
evals = with_intervals(q.evaluations(), samples="n")
figure = px.scatter(
    evals,
    x="step",
    y="accuracy",
    color="variant",
    symbol="dataset",
    facet_col="run",
    error_y="error_plus",
    error_y_minus="error_minus",
    title="accuracy of each evaluation, 95% Wilson intervals over its problems",
)
chart(steps_axis(figure, evals["step"]).update_yaxes(range=[-0.02, 1.02]), key="evaluations")

latest = paired_section(q, q.latest_comparisons())
st.subheader("Drill-down")
label = {
    row.eval_id: f"{row.run} step {row.step} {row.variant} on {row.dataset} ({row.accuracy:.3f}, "
    f"95% {row.low:.3f}-{row.high:.3f})"
    for row in evals.itertuples()
}
follow("eval", latest)  # the drill-down opens on the comparison shown above
chosen = pick(
    "Evaluation", list(label), "eval", list(label).index(latest) if latest in label else 0, format_func=label.get
)
only_wrong = toggle("Only wrong answers", "wrong")
st.dataframe(q.eval_samples(chosen, only_wrong), hide_index=True, width="stretch")
