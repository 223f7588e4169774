"""`rlvr report`: one self-contained HTML file of a run's key figures and the numbers behind them.

Sections (each where the cache has it): the run's overview; the claims board (each claim's measure against
chance, with its verdict); heavy tails (the share of heavy-tailed fits and
the median alpha per step, alpha over steps per module kind for W and dW, one ESD with its fit); rank-1
dynamics (sigma1 and rank-1 energy of dW per module kind); alignment (|cos(u1, u1 final)| per module
kind); reward vs test with the monitor's last verdict; recovery of the rank-k substitutions; predictions
from early steps; which metrics track accuracy. Every figure is drawn by the dashboard's own builders
(`report.figures`); plotly's JavaScript is embedded once, so the file opens offline. The header names
the tool version, the time, and the cache fingerprint (`Cache.fingerprint`: sha256 of the run's files).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .. import __version__
from ..cache import Cache
from ..cache.atomic import OUTPUT_MARK
from ..cache.queries import Queries
from ..errors import UsageError
from .claims_figures import claims_figure
from .figures import banded, banded_alpha, ccdf_figure, with_chance, with_intervals
from .layout import for_pages
from .measures import label
from .plain import plain
from .research_figures import cosine_figure, prediction_figure, with_chance_band
from .reward_figures import reward_test_figure

Section = tuple[str, list[go.Figure], list[tuple[str, pd.DataFrame]], str]
"""(title, figures, (caption, table) pairs, a paragraph)."""


def build_report(cache: Cache, run: str) -> str:
    """The report's HTML; a UsageError when the cache knows nothing of `run`."""
    q = cache.queries()
    overview = q.runs_overview()
    overview = overview[overview["run"] == run]
    if overview.empty:
        known = ", ".join(overview_names(q)) or "none"
        raise UsageError(f"run '{run}'", "a run the cache knows", f"no such run (runs: {known})", "see rlvr runs")
    sections: list[Section] = [
        ("Overview", [], [("The run", overview.T.reset_index().set_axis(["", run], axis=1))], "")
    ]
    for build in (_claims, _heavy_tails, _rank1, _alignment, _reward, _recovery, _prediction, _correlations):
        section = build(q, run)
        if section is not None:
            sections.append(section)
    return _page(run, cache.fingerprint(run), sections)


def overview_names(q: Queries) -> list[str]:
    return q.runs_overview()["run"].tolist()


def _heavy_tails(q: Queries, run: str) -> Section | None:
    findings = q.findings([run])
    if findings.empty:
        return None
    band = q.chance_band(run, "alpha")
    figures = [
        with_chance_band(banded_alpha(q.alpha_by_module(run, t), f"α of {t} over steps (median per module kind)"),
                         band, "a Gaussian matrix")
        for t in ("W", "dW")
    ]  # fmt: skip
    steps = q.fit_steps(run)
    last = steps[-1] if steps else None
    if last is not None:
        fits = q.fits(run, last, "dW" if last else "W")
        ok = fits[fits["fit_status"] == "ok"]
        if not ok.empty:
            fit = ok.iloc[len(ok) // 2].to_dict()
            target = "dW" if last else "W"
            svs = q.tensor_singular_values(run, fit["tensor"], target, [last])
            title = f"ESD of {fit['tensor']} ({target}, step {last}) and its fit: share of eigenvalues ≥ λ"
            figures.append(ccdf_figure(svs, last, fit, target, title))
    text = "Heavy-tailed: the share of successful power-law fits whose likelihood ratio favours the power law."
    return "Heavy tails", figures, [("Per step and target", findings)], text


def _rank1(q: Queries, run: str) -> Section | None:
    sigma = q.layer_measure_by_module(run, "spectral_norm")
    if sigma.empty or sigma["step"].nunique() < 2:
        return None
    figures = [banded(q.layer_measure_by_module(run, m), m, f"{label(m)} of dW (median per module kind, quartiles)")
               for m in ("spectral_norm", "rank1_energy")]  # fmt: skip
    figures[1] = with_chance_band(figures[1], q.chance_band(run, "rank1_energy"), "a Gaussian matrix")
    return "Rank-1 dynamics", figures, [("Rank-1 trajectory per tensor", q.rank1_dynamics(run))], ""


def _alignment(q: Queries, run: str) -> Section | None:
    rows = q.alignment_by_module(run, "cos_u_final")
    if rows.empty:
        return None
    figure = banded(rows, "cos_u_final", "|cos(u1, u1 at the final step)| (median per module kind)")
    figure = with_chance(figure, q.alignment_chance(run, "cos_u_final"), "random directions")
    return "Alignment of the rank-1 directions", [figure], [("Median per module kind and step", rows)], ""


def _reward(q: Queries, run: str) -> Section | None:
    series = q.reward_and_test([run])
    if series.empty:
        return None
    evals = with_intervals(q.evaluations([run]), samples="n")
    figure = reward_test_figure(series, evals, 10).update_layout(title="Reward and test over steps")
    verdicts = q.decoupling([run])
    tables = [("The implicit-reward-overfitting monitor, every held-out step", verdicts)] if not verdicts.empty else []
    last = verdicts.iloc[-1] if not verdicts.empty else None
    text = "" if last is None else f"The monitor's last verdict (step {int(last['step'])}): {last['status']}."
    return "Reward vs test", [figure], tables, text


def _recovery(q: Queries, run: str) -> Section | None:
    rows = q.recovery()
    rows = rows[rows["run"] == run]
    if rows.empty:
        return None
    return "Rank-k substitution: recovery", [], [("Accuracies and recovery (95% intervals)", rows)], ""


def _prediction(q: Queries, run: str) -> Section | None:
    rows = q.prediction_by_module(run)
    if rows.empty:
        return None
    last = rows.iloc[-1]
    chosen = rows[(rows["from_step"] == last["from_step"]) & (rows["to_step"] == last["to_step"])]
    real = q.layer_measure_by_module(run, "spectral_norm")
    t, big_t = int(last["from_step"]), int(last["to_step"])
    figures = [prediction_figure(real, chosen, big_t, f"σ1 of dW extrapolated from steps ≤ {t} to {big_t}"),
               cosine_figure(chosen, f"|cos(u1({t}), u1({big_t}))|")]  # fmt: skip
    return "Prediction from early checkpoints", figures, [("Every prediction, median per module kind", rows)], ""


def _correlations(q: Queries, run: str) -> Section | None:
    rows = q.metric_correlations(run)
    if rows.empty:
        return None
    top = rows[rows["level"] == "module"].head(20)
    caption = (
        "Spearman's ρ between step-to-step changes (a shared trend with training time does not count), p "
        "adjusted over the table (Benjamini–Hochberg); the first 20 per module kind"
    )
    return "Which metrics track accuracy", [], [(caption, top)], ""


def _claims(q: Queries, run: str) -> Section | None:
    rows = q.claims(run)
    if rows.empty:
        return None
    step = int(rows["step"].iloc[0])
    figure = claims_figure(rows, f"Claims at step {step}: this run (median over tensors, 95% interval) against chance")
    shown = rows[["claim_id", "verdict", "claim", "citation", "measure", "value", "low", "high", "n", "chance",
                  "chance_low", "chance_high", "reason"]]  # fmt: skip
    text = (
        "Verdict rules: the docs' 'The claims board' (docs/questions/claims-board.md). Chance: an i.i.d. "
        "Gaussian update or matrix of the same shape and norm."
    )
    return "The claims board", [figure], [("One row per claim", shown)], text


def _page(run: str, fingerprint: str, sections: list[Section]) -> str:
    body = []
    for title, figures, tables, text in sections:
        body.append(f"<section><h2>{html.escape(title)}</h2>")
        if text:
            body.append(f"<p>{html.escape(text)}</p>")
        for figure in figures:
            shown = plain(for_pages(go.Figure(figure)))  # as the pages show it
            body.append(shown.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True}))
        for caption, table in tables:
            body.append(f"<h3>{html.escape(caption)}</h3>" + _table(table))
        body.append("</section>")
    made = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{OUTPUT_MARK.decode()}">
<title>RLVR Lens report: {html.escape(run)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:2px 6px}}
section{{margin-bottom:2.5em}}.meta{{color:#666;font-size:13px}}</style></head>
<body><h1>RLVR Lens report: {html.escape(run)}</h1>
<p class="meta">rlvr-lens {__version__}; made {made}; cache fingerprint (sha256 of the run's files)
<code>{fingerprint}</code></p>
{"".join(body)}
</body></html>
"""


def _table(frame: pd.DataFrame, limit: int = 500) -> str:
    shown = frame.head(limit)
    note = f"<p class='meta'>first {limit} of {len(frame)} rows</p>" if len(frame) > limit else ""
    return shown.to_html(index=False, float_format=_number, na_rep="", escape=True, border=0) + note


_number: Callable[[float], str] = lambda v: f"{v:.4g}"  # noqa: E731
