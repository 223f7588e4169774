"""The dashboard as an instrument: selections follow the user from page to page, charts follow the chart
rules (integer layers, modules in model order, fixed ranges for bounded measures, failed fits explained,
intervals on accuracies and recoveries), forms check what they queue, and the demo's own evaluations are
on the Substitution page of a fresh demo cache."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rlvr_core.cache import queue as jobs
from rlvr_dashboard.charts import module_order
from tests.references import plotted

APP = str(Path(__file__).resolve().parent.parent / "app.py")
pytestmark = pytest.mark.slow


@pytest.fixture
def demo_app(quick_demo, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(quick_demo[1]))
    return quick_demo[1]


def figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(f"rlvr_dashboard/views/{name}.py")
    return at


def test_module_order_is_the_models():
    mixed = [
        "mlp.up_proj",
        "self_attn.o_proj",
        "mlp.down_proj",
        "self_attn.q_proj",
        "mlp.gate_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "mlp.experts.1.w1",
        "mlp.experts.0.w2",
        "mlp.experts.0.w1",
        "mlp.gate",
    ]
    assert module_order(mixed) == [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
        "mlp.experts.0.w1",
        "mlp.experts.0.w2",
        "mlp.experts.1.w1",
        "mlp.gate",
    ]


def test_layers_heatmap_has_integer_layers_model_order_and_a_fixed_range(demo_app):
    at = page("layers").run()
    assert not at.exception
    fig, overlay = figures(at)  # the heatmap; several runs per layer
    layers = fig["layout"]["yaxis"]["tickvals"]
    assert overlay["layout"]["xaxis"]["tickvals"] == layers  # integer layers there too, no 0.5 ticks
    assert layers == list(range(len(layers))) and fig["layout"]["yaxis"]["ticktext"] == [str(x) for x in layers]
    assert fig["data"][0]["x"] == [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    ]
    coloraxis = fig["layout"]["coloraxis"]
    assert (coloraxis["cmin"], coloraxis["cmax"]) == (0, 1)  # rank-1 energy is bounded: drawn on [0, 1]
    assert "the share of" in at.caption[0].value  # the measure's definition
    assert "expert" not in at.dataframe[0].value.columns  # a dense model: no column of None


def test_base_step_offers_only_w(demo_app):
    at = page("layers")
    at.query_params["step"] = "0"
    at.run()
    assert not at.exception and at.radio[0].options == ["W (the weight)"]


def test_a_failed_fit_is_explained_not_drawn_as_a_dot(demo_app):
    at = page("spectra")
    at.query_params.update({"run": "demo-grpo-rank1-k10", "step": "10", "target": "dW"})
    at.run()  # at a substitution step every update is exactly rank 1: no ESD to fit
    assert not at.exception
    reasons = " ".join(w.value for w in at.warning)
    assert "no fit" in reasons and "could be fitted" in reasons
    esd = figures(at)[0]
    assert any("no power-law fit" in a["text"] for a in esd["layout"].get("annotations", []))
    assert "power law" not in " ".join(t["name"] for t in esd["data"])


def rank_plot_tail_inside_band(cache: Path, run: str, step: int, tensor: str | None = None) -> tuple[AppTest, dict]:
    """Open the Spectra page's rank plot of `tensor` (default: the page's first) of W at `step`: one point per
    cached eigenvalue at (lambda, share >= lambda), the fitted law drawn from xmin, and the share of tail points
    inside the fit's 95% binomial band (one eigenvalue of slack), which must be at least 0.9.
    Returns (the page, its fit)."""
    from rlvr_core.cache import Cache

    at = page("spectra")
    at.query_params.update({"run": run, "step": str(step), "target": "W", **({"tensor": tensor} if tensor else {})})
    at.run()
    assert not at.exception
    rank_plot = figures(at)[0]
    table = at.dataframe[0].value
    fit = table[table["tensor"] == tensor].iloc[0] if tensor else table.iloc[0]
    assert fit["fit_status"] == "ok"
    sv = Cache(cache).queries().tensor_singular_values(run, fit["tensor"], "W", [step])[step]
    lam = np.sort(np.asarray(sv) ** 2)
    lam = lam[lam > 1e-5]
    points = next(t for t in rank_plot["data"] if t.get("name") == f"eigenvalues at step {step}")
    x, y = plotted(points["x"]), plotted(points["y"])
    assert np.allclose(x, lam) and np.allclose(y, (lam.size - np.arange(lam.size)) / lam.size)
    law = next(t for t in rank_plot["data"] if t.get("name", "").startswith("power law"))
    assert plotted(law["x"])[0] == pytest.approx(fit["xmin"])
    high = plotted(next(t for t in rank_plot["data"] if t.get("showlegend") is False)["y"])
    low = plotted(next(t for t in rank_plot["data"] if t.get("name", "").startswith("95% binomial"))["y"])
    tail = x >= fit["xmin"]
    lo_at, hi_at = (np.interp(np.log(x[tail]), np.log(plotted(law["x"])), b) for b in (low, high))
    inside = (y[tail] >= lo_at - 1 / lam.size) & (y[tail] <= hi_at + 1 / lam.size)  # one eigenvalue of slack
    assert inside.mean() >= 0.9, inside.mean()
    return at, fit.to_dict() | {"inside": float(inside.mean()), "tail_points": int(tail.sum())}


def test_the_esd_is_a_rank_plot_whose_tail_agrees_with_its_fit_and_the_histogram_leaves_empty_bins_empty(demo_app):
    """The default ESD view agrees with its fit (`rank_plot_tail_inside_band`); the histogram view draws an
    empty bin as a gap, not as a line joining its neighbours."""
    from rlvr_core.cache import Cache

    at, fit = rank_plot_tail_inside_band(demo_app, "demo-grpo", 20)
    at.radio(key="url_esd_view").set_value("histogram").run()
    histogram = figures(at)[0]["data"][0]
    bins = Cache(demo_app).queries().esd_histograms("demo-grpo", fit["tensor"], "W", [20])
    empty = int((bins["density"] == 0).sum())
    assert empty > 0 and histogram["connectgaps"] is False
    assert int(np.isnan(plotted(histogram["y"])).sum()) == empty  # each empty bin a gap


@pytest.fixture(scope="module")
def full_demo(request) -> Path:
    """The full demo's cache, as `rlvr serve` from the installed wheel builds it on an empty cache (the
    `installed_dashboard` fixture: about 5 minutes on 2 idle cores); $RLVR_FULL_DEMO_CACHE names one already
    built instead."""
    if os.environ.get("RLVR_FULL_DEMO_CACHE"):
        return Path(os.environ["RLVR_FULL_DEMO_CACHE"])
    return request.getfixturevalue("installed_dashboard")[2]


def test_the_full_demos_step_200_layer_0_down_proj_tail_agrees_with_its_fit(full_demo, monkeypatch) -> None:
    """The tour's case (issue 31): demo-grpo step 200, W, layer 0 down_proj, on the full demo: α = 2.81 predicts
    3.6 eigenvalues above λ = 1.02 and there are 4; the rank plot as the page draws it must agree."""
    monkeypatch.setenv("RLVR_CACHE", str(full_demo))
    _, fit = rank_plot_tail_inside_band(full_demo, "demo-grpo", 200, "model.layers.0.mlp.down_proj.weight")
    print(f"alpha {fit['alpha']:.3f}, xmin {fit['xmin']:.4g}, {fit['tail_points']} tail points, {fit['inside']:.3f} in")


def test_bounded_alignment_measures_have_a_fixed_range_and_steps_are_integer_ticks(demo_app):
    at = page("alignment").run()
    assert not at.exception
    cosines = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith("|cos(u1"))
    assert cosines["layout"]["yaxis"]["range"] == [-0.02, 1.02]
    assert cosines["layout"]["xaxis"]["tickvals"] == [10, 20]
    assert [t["name"] for t in cosines["data"] if t.get("mode") == "lines+markers"] == module_order(
        [t["name"] for t in cosines["data"] if t.get("mode") == "lines+markers"]
    )


def test_accuracies_and_recoveries_carry_intervals(demo_app):
    at = page("reward").run()
    evaluated = [t for t in figures(at)[0]["data"] if "evaluated" in t["name"]]
    assert evaluated and all(t["error_y"]["array"] and t["error_y"]["arrayminus"] for t in evaluated)
    assert "95% Wilson" in evaluated[0]["name"]
    at = page("substitution").run()
    recovery = figures(at)[0]
    assert all("array" in t["error_y"] for t in recovery["data"])
    table = at.dataframe[0].value
    ok = table[table["recovery"].notna()]
    assert ((ok["recovery_low"] <= ok["recovery"]) & (ok["recovery"] <= ok["recovery_high"])).all()
    assert table[table["recovery"].isna()]["recovery_note"].notna().all()


def test_the_demos_own_evaluations_are_on_the_substitution_page(demo_app):
    at = page("substitution").run()
    table = at.dataframe[0].value
    assert set(table["keep"]) == {"step"} and sorted(table["step"]) == [10, 20]
    assert set(table["n_problems"]) == {1000} and set(table["dataset"]) == {"arithmetic"}
    labels = at.selectbox(key="url_eval").options
    assert any("rank-1" in label for label in labels) and any("base" in label for label in labels)


def test_selections_follow_the_user_across_pages(demo_app):
    at = page("layers").run()
    at.selectbox(key="url_run").set_value("demo-grpo-rank1-k10").run()
    at.selectbox(key="url_step").set_value(10).run()
    for name in ("spectra", "alignment", "layers"):
        at.switch_page(f"rlvr_dashboard/views/{name}.py").run()
        assert not at.exception, name
        assert at.selectbox(key="url_run").value == "demo-grpo-rank1-k10", name
        if name != "alignment":
            assert at.selectbox(key="url_step").value == 10, name
        assert at.query_params["run"] in ("demo-grpo-rank1-k10", ["demo-grpo-rank1-k10"]), name


def test_settings_that_change_the_view_are_in_the_url(demo_app):
    at = page("reward").run()
    at.slider(key="url_window").set_value(3).run()
    assert at.query_params["window"] in ("3", ["3"])
    again = page("reward")
    again.query_params["window"] = "3"
    again.run()
    assert again.slider(key="url_window").value == 3
    at = page("substitution").run()
    at.checkbox(key="url_wrong").check().run()
    assert at.query_params["wrong"] in ("1", ["1"])


def test_the_comparison_form_checks_before_queueing_and_prices_the_work(demo_app, tmp_path, monkeypatch):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(demo_app, cache)
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = page("substitution").run()
    form = {"Steps (comma-separated; empty: all analysed steps)": "999", "Ranks": "1,64"}
    for label, value in form.items():
        next(t for t in at.text_input if t.label == label).set_value(value)
    at.text_input(key="dataset").set_value("arithmetic,nosuchset")
    at.button[0].click().run()
    errors = re.sub(r"\\(.)", r"\1", " ".join(e.value for e in at.error))  # shown with Markdown escaped
    assert "[999] are not analysed steps of this run" in errors and "no such set" in errors
    assert jobs.list_jobs(cache) == []
    next(t for t in at.text_input if t.label.startswith("Steps")).set_value("20")
    at.text_input(key="dataset").set_value("arithmetic")
    at.number_input(key="limit").set_value(50)
    at.number_input(key="max_new_tokens").set_value(5)
    at.button[0].click().run()
    notes = " ".join(i.value for i in at.info)
    assert "ranks [64] exceed the 8 triplets" in re.sub(r"\\(.)", r"\1", notes)
    cost = "Cost: 4 evaluations x 50 problems x 1 samples, at most 1,000 generated tokens"
    assert any(cost in c.value for c in at.caption)
    assert [j.kind for j in jobs.list_jobs(cache)] == ["compare"]


def test_an_empty_ingestion_form_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path))
    at = page("runs").run()
    next(b for b in at.button if b.label == "Queue the ingestion").click().run()
    assert "Give the log file or folder and the run name." in at.error[0].value
    next(b for b in at.button if b.label == "Check").click().run()
    assert any("Give the run folder" in e.value for e in at.error)
