"""Prediction page: how well a run's early checkpoints predict a later one (`rlvr predict`: each update
extrapolated as s(T) u1(t) v1(t)^T, s linear in the step). Pick the from-step (a slider) and the step to
predict; the real sigma1 per module kind over steps with each fitted line and the predicted value; the
cosine of u1(t) with u1(T); the scores; the prediction's accuracy once evaluated. Buttons queue the
prediction (`predict` job) and its evaluation (`compare --predicted`)."""

import streamlit as st

from rlvr_dashboard.charts import chart
from rlvr_dashboard.research_charts import cosine_figure, prediction_figure
from rlvr_dashboard.ui import (
    CompareRequest,
    PredictRequest,
    live,
    pick,
    prediction_folder,
    queries,
    run_folder_of,
    submit,
)

st.title("Prediction from early checkpoints")
q = queries()
sources = {run: (base, paths) for run, base, paths in q.run_sources() if len(paths) >= 2}
if not sources:
    st.info("A prediction needs a run with two or more analysed steps: see the Runs page.")
    live()
    st.stop()
left, middle, right = st.columns(3)
run = pick("Run", list(sources), "run", container=left)
live([run])
steps = [s for s in q.steps(run) if s > 0]
from_step = pick("Predict from step (t)", steps[:-1], "from_step", container=middle, slider=True)
to_step = pick("…the step (T)", [s for s in steps if s > from_step], "to_step", 99, container=right)
rank = 1
folder = prediction_folder(run, from_step, to_step, rank)
everything = q.prediction_by_module(run)
chosen = everything[
    (everything["from_step"] == from_step) & (everything["to_step"] == to_step) & (everything["rank"] == rank)
]
if chosen.empty:
    st.info(f"Step {to_step} has not been predicted from step {from_step} yet.")
    if st.button("Predict it", type="primary"):
        submit(PredictRequest(run=run, from_step=from_step, to_step=to_step, rank=rank, out=str(folder)))
    st.stop()
real = q.layer_measure_by_module(run, "spectral_norm")
chart(prediction_figure(real, chosen, to_step, f"σ1 of dW: real, and extrapolated from steps ≤ {from_step}"))
st.caption(
    "Dashed: each module kind's line fitted to σ1 over the steps ≤ t (the median over layers of each "
    "layer's fit); open circle: the predicted σ1 at T; the solid line: what the run really did."
)
chart(cosine_figure(chosen, f"Has the direction settled by step {from_step}? |cos(u1({from_step}), u1({to_step}))|"))
st.dataframe(chosen, hide_index=True, width="stretch")
recovery = q.recovery()
mode = f"predicted-from-{from_step}"
evaluated = recovery[(recovery["run"] == run) & (recovery["mode"] == mode) & (recovery["step"] == to_step)]
if not evaluated.empty:
    st.subheader("The prediction's accuracy")
    st.dataframe(evaluated[["dataset", "acc_base", "acc_full", "acc_rank", "recovery", "recovery_low",
                            "recovery_high", "recovery_note"]], hide_index=True, width="stretch")  # fmt: skip
with st.form("evaluate_prediction"):
    dataset = st.text_input("Evaluate on (dataset)", "arithmetic", key="prediction_dataset")
    limit = st.number_input("Limit (0: all problems)", 0, 100000, 0, key="prediction_limit")
    if st.form_submit_button("Evaluate this prediction"):
        base, paths = sources[run]
        request = CompareRequest(
            run_dir=run_folder_of(paths[-1]), base=base, steps=str(to_step), dataset=dataset, run=run,
            predicted=(str(folder),), limit=int(limit) or None,
        )  # fmt: skip
        submit(request)
st.caption("The predicted checkpoint:")
st.code(str(folder), language=None, wrap_lines=True)  # plain text: a path shows as it is, no Markdown escapes
