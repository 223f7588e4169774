"""Spectra and heavy tails page: one tensor's ESD on log-log axes with its power-law fit and xmin (or the
reason it has none), overlaid on the same tensor's ESD at other steps (the base, step 0, against the step
by default), the fit's quality, the step's α as a layer x module heatmap, α over steps per module kind or
per layer of one module kind, and the fit table with the likelihood-ratio tests."""

import streamlit as st

from rlvr_dashboard.charts import (
    P_VALUE,
    caption,
    chart,
    esd_figure,
    fit_quality,
    heatmap,
    lines,
    module_order,
    named_figure,
)
from rlvr_dashboard.ui import escape, live, pick, pick_many, pick_step_and_target, queries

st.title("Spectra and heavy tails")
q = queries()
runs = q.fit_runs()
if not runs:
    st.info("No power-law fits cached yet: `rlvr analyze` computes them (unless --no-fits).")
    live()  # a watched run's first steps appear without a reload
    st.stop()
left, middle, right = st.columns(3)
run = pick("Run", runs, "run", container=left)
live([run])
steps = q.fit_steps(run)
step, target = pick_step_and_target(steps, ("W", "dW"), (middle, right))
fits = q.fits(run, step, target)
tensor = pick("Tensor", fits["tensor"].tolist(), "tensor")
fit = fits[fits["tensor"] == tensor].iloc[0].to_dict()
others = [s for s in steps if s != step and (target == "W" or s != 0)]
overlay = pick_many("Overlay the ESD at steps", others, "vs", [0] if target == "W" and 0 in others else [])
hists = q.esd_histograms(run, tensor, target, [step, *overlay])
chart(esd_figure(hists, step, fit, f"ESD of {target}: {tensor}, step {step}"))
(st.caption if fit["fit_status"] == "ok" else st.warning)(escape(fit_quality(fit)))

ok = fits[fits["fit_status"] == "ok"]
failed = fits[fits["fit_status"] != "ok"]
if ok.empty:
    st.warning(f"No {target} spectrum of step {step} could be fitted; the reasons, per tensor:")
    st.dataframe(failed[["tensor", "fit_error"]], hide_index=True, width="stretch")
else:
    chart(
        heatmap(
            ok,
            "alpha",
            "alpha",
            f"α of {target}, step {step}"
            + (f" ({len(failed)} of {len(fits)} fits failed: blank)" if len(failed) else ""),
        )
    )
modules = module_order(fits["module"].unique())
group = pick("α over steps", ["median per module kind", *modules], "group")
if group in modules:
    chart(lines(q.alpha_per_layer(run, target, group), "alpha", "layer", "alpha", f"α of {target}: {group} per layer"))
else:
    chart(named_figure(q, run, "alpha-over-steps", target))  # what `rlvr figure --kind alpha-over-steps` draws
st.caption(caption("alpha"))
p_columns = ("p_exponential", "p_lognormal", "p_truncated_power_law")
st.dataframe(
    fits,
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format=P_VALUE) for c in (*p_columns, "xmin")},
)
st.download_button("Download the fits (CSV)", fits.to_csv(index=False), f"fits_{run}_{step}_{target}.csv", "text/csv")
