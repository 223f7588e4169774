"""Spectra and heavy tails page: one tensor's ESD on log-log axes with its power-law fit and xmin (or the
reason it has none): as a rank plot (the share of eigenvalues >= lambda, with the fit's binomial band) by
default, or as a log-binned histogram (empty bins left empty), overlaid on the same tensor's ESD at other
steps (the base, step 0, against the step by default); the fit's quality, the step's α as a layer x module
heatmap, α over steps per module kind or per layer of one module kind, and the fit table with the
likelihood-ratio tests. Each α chart carries what a Gaussian matrix of the same shape fits
(`chance_levels`, with the run's claims board)."""

import streamlit as st

from rlvr_dashboard.charts import (
    P_VALUE,
    caption,
    ccdf_figure,
    chart,
    esd_figure,
    fit_quality,
    heatmap,
    heatmap_chance,
    lines,
    module_order,
    named_figure,
    per_shape,
    per_shape_text,
)
from rlvr_dashboard.research_charts import gaps_caption, with_chance_band, with_gaps
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
levels = q.chance_levels(run, "alpha")  # a Gaussian matrix of each shape (empty: no claims board yet)
chances = per_shape(levels)
tensor = pick("Tensor", fits["tensor"].tolist(), "tensor")
fit = fits[fits["tensor"] == tensor].iloc[0].to_dict()
others = [s for s in steps if s != step and (target == "W" or s != 0)]
overlay = pick_many("Overlay the ESD at steps", others, "vs", [0] if target == "W" and 0 in others else [])
views = {"ccdf": "rank plot (share of eigenvalues ≥ λ)", "histogram": "histogram (log bins)"}
view = pick("ESD as", list(views), "esd_view", radio=True, format_func=views.get)
if view == "ccdf":
    svs = q.tensor_singular_values(run, tensor, target, [step, *overlay])
    chart(ccdf_figure(svs, step, fit, target, f"ESD of {target}: {tensor}, step {step}"))
else:
    hists = q.esd_histograms(run, tensor, target, [step, *overlay])
    chart(esd_figure(hists, step, fit, f"ESD of {target}: {tensor}, step {step}"))
    st.caption(
        "Empty bins are gaps. In the sparse tail a lone eigenvalue in a narrow bin reads as a high density: judge "
        "the fit on the rank plot, which has no bins."
    )
(st.caption if fit["fit_status"] == "ok" else st.warning)(escape(fit_quality(fit)))

ok = fits[fits["fit_status"] == "ok"]
failed = fits[fits["fit_status"] != "ok"]
if ok.empty:
    st.warning(f"No {target} spectrum of step {step} could be fitted; the reasons, per tensor:")
    st.dataframe(failed[["tensor", "fit_error"]], hide_index=True, width="stretch")
else:
    failures = f" ({len(failed)} of {len(fits)} fits failed: blank)" if len(failed) else ""
    chart(heatmap_chance(heatmap(ok, "alpha", "alpha", f"α of {target}, step {step}{failures}"), chances))
modules = module_order(fits["module"].unique())
group = pick("α over steps", ["median per module kind", *modules], "group")
gaps = q.alpha_gaps(run, target, group if group in modules else None)
if group in modules:
    per_layer = q.alpha_per_layer(run, target, group)
    figure = lines(per_layer, "alpha", "layer", "alpha", f"α of {target}: {group} per layer")
    chart(with_gaps(with_chance_band(figure, q.chance_band(run, "alpha", group), "a Gaussian matrix"), gaps))
else:  # what `rlvr figure --kind alpha-over-steps` draws, its chance band and gaps included
    chart(named_figure(q, run, "alpha-over-steps", target))
if not gaps.empty:
    st.warning(escape(gaps_caption(gaps)))
st.caption(
    caption("alpha")
    + ("  \nWhat an i.i.d. Gaussian matrix of each shape fits (mean [range over 3 draws]; its spectrum has no "
       "power-law tail, so the fit is erratic): "
       + per_shape_text(chances)
       if chances else "  \nNo chance level yet: it comes with the run's claims board (`rlvr claims RUN`).")
)  # fmt: skip
p_columns = ("p_exponential", "p_lognormal", "p_truncated_power_law")
st.dataframe(
    fits,
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format=P_VALUE) for c in (*p_columns, "xmin")},
)
st.download_button("Download the fits (CSV)", fits.to_csv(index=False), f"fits_{run}_{step}_{target}.csv", "text/csv")
