"""The claims board (issue: the claims board): planted updates get the intended verdicts through the real
path (`rlvr analyze` on real safetensors, then `rlvr claims`), a Gaussian update reads as chance, and
`rlvr claims --json` is valid JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rlvr_core.cache import Cache
from rlvr_core.fixtures.checkpoints import ModelShape, random_model, write_checkpoint
from rlvr_core.math import verdicts
from tests.references import plotted

pytestmark = pytest.mark.slow  # each builds and analyses real runs and simulates chance levels: ~2 min in all
SHAPE = ModelShape(hidden=64, intermediate=160, kv_dim=32, n_layers=2)
SUPPORTED, CONTRADICTED, NOT_MEASURABLE = verdicts.SUPPORTED, verdicts.CONTRADICTED, verdicts.NOT_MEASURABLE


def _update(w: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """The planted update of one matrix (out x in), of Frobenius norm 1e-3 * |W|_F."""
    m, n = w.shape
    u, s, vt = torch.linalg.svd(w.double(), full_matrices=False)
    if kind == "rank1-sparse":  # one outer product on 10% of the rows and columns: sparse and rank-1
        a = torch.zeros(m, dtype=torch.float64)
        b = torch.zeros(n, dtype=torch.float64)
        a[torch.randperm(m, generator=gen)[: max(m // 10, 1)]] = 1.0
        b[torch.randperm(n, generator=gen)[: max(n // 10, 1)]] = 1.0
        d = torch.outer(a, b)
    elif kind.startswith("masked-"):  # Gaussian on a fixed 20% of the entries, the mask seeded by its name
        mask = torch.rand(m, n, generator=torch.Generator().manual_seed(int(kind[7:]) * 100 + m + n)) < 0.2
        d = torch.randn(m, n, generator=gen, dtype=torch.float64) * mask
    elif kind == "gaussian":
        d = torch.randn(m, n, generator=gen, dtype=torch.float64)
    elif kind == "principal":  # on the base's own top-8 directions
        d = (u[:, :8] * torch.arange(8, 0, -1, dtype=torch.float64)) @ vt[:8]
    elif kind == "values":  # the singular values rescaled, the directions kept
        d = (u * (0.01 * s)) @ vt
    else:
        raise ValueError(kind)
    return (d * (1e-3 * float(w.norm()) / float(d.norm()))).float()


def _run(tmp_path, cli, kind: str, dtype: str = "fp32", steps=(10,), name: str | None = None, seed: int = 3):
    base = random_model(SHAPE, seed=0)
    base = {n: t.to(torch.bfloat16).float() for n, t in base.items()}
    write_checkpoint(tmp_path / "base", base, "bf16")
    gen = torch.Generator().manual_seed(seed)
    name = name or kind
    for step in steps:
        weights = {n: (t + step / steps[-1] * _update(t, kind, gen)) if t.ndim == 2 and "proj" in n else t
                   for n, t in base.items()}  # fmt: skip
        write_checkpoint(tmp_path / name / f"checkpoint-{step}", weights, dtype)
    cache = tmp_path / "c"
    rc, _, err = cli("analyze", tmp_path / name, "--base", tmp_path / "base", "--cache", cache, "--run", name,
                     "--quiet")  # fmt: skip
    assert rc == 0, err
    rc, out, err = cli("claims", name, "--cache", cache, "--json")
    assert rc == 0, err
    return json.loads(out)


def _by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["claim_id"]: r for r in rows}


def test_a_planted_sparse_rank1_update_reads_as_sparse_rank1_and_the_json_is_valid(tmp_path, cli) -> None:
    rows = _by_id(_run(tmp_path, cli, "rank1-sparse"))
    assert rows["seed-1"]["verdict"] == SUPPORTED and rows["seed-1"]["value"] > 0.99
    assert rows["mukherjee-1"]["verdict"] == SUPPORTED and rows["mukherjee-1"]["value"] > 0.95
    assert rows["mukherjee-2"]["verdict"] == CONTRADICTED  # a rank-1 update is not full-rank
    for row in rows.values():
        assert row["verdict"] in (SUPPORTED, CONTRADICTED, NOT_MEASURABLE)
        assert row["verdict"] != NOT_MEASURABLE or row["reason"], row
    assert rows["seed-2"]["verdict"] == NOT_MEASURABLE and rows["mukherjee-3"]["verdict"] == NOT_MEASURABLE


def test_a_gaussian_update_reads_as_chance_on_every_measure(tmp_path, cli) -> None:
    rows = _by_id(_run(tmp_path, cli, "gaussian"))
    assert rows["seed-1"]["verdict"] == CONTRADICTED  # no more rank-1 than noise
    r1 = rows["seed-1"]
    assert r1["chance_low"] <= r1["value"] <= 2 * r1["chance_high"]
    assert rows["mukherjee-1"]["verdict"] == CONTRADICTED and rows["mukherjee-1"]["value"] == 0.0
    assert rows["mukherjee-2"]["verdict"] == SUPPORTED and rows["mukherjee-2"]["chance"] == 1.0
    for claim in ("zhu-1", "zhu-2", "zhu-3", "jin-1"):  # each measure inside (or at) its chance band
        row = rows[claim]
        assert row["verdict"] == SUPPORTED, row
        spread = row["chance_high"] - row["chance_low"]
        assert row["chance_low"] - spread <= row["value"] <= row["chance_high"] + spread, row
    assert rows["jin-1"]["reason"].startswith("at chance") and "nothing specific to RL" in rows["jin-1"]["reason"]


def test_a_principal_update_is_contradicted_as_off_principal(tmp_path, cli) -> None:
    rows = _by_id(_run(tmp_path, cli, "principal"))
    assert rows["zhu-3"]["verdict"] == CONTRADICTED and rows["zhu-3"]["value"] < 1e-3
    assert rows["zhu-3"]["chance_low"] > 0.5


def test_values_changed_with_directions_kept_contradict_rotation_over_values(tmp_path, cli) -> None:
    rows = _by_id(_run(tmp_path, cli, "values"))
    assert rows["jin-1"]["verdict"] == CONTRADICTED and rows["jin-1"]["value"] < 0.05
    assert rows["jin-1"]["reason"].startswith("below chance: a random update of the same norm gives 0.9")
    assert rows["zhu-2"]["verdict"] == SUPPORTED and rows["zhu-2"]["value"] < 1e-3  # no rotation at all
    assert rows["zhu-1"]["verdict"] == CONTRADICTED  # far more drift than a random update of that norm


def test_a_16bit_step_makes_sparsity_not_measurable_and_alignment_needs_steps(tmp_path, cli) -> None:
    rows = _by_id(_run(tmp_path, cli, "gaussian", dtype="bf16", steps=(10, 20, 30, 40, 50)))
    assert rows["mukherjee-1"]["verdict"] == NOT_MEASURABLE and "16-bit" in rows["mukherjee-1"]["reason"]
    seed4 = rows["seed-4"]  # 4 steps before the last: rho measured, but no p below 0.083 is possible
    assert seed4["verdict"] == NOT_MEASURABLE and "even a perfect rise has p = 0.0833" in seed4["reason"]
    assert not math.isnan(seed4["value"])


def test_median_interval_covers_the_median() -> None:
    values = np.random.default_rng(0).normal(size=101)
    s = verdicts.median_interval(values)
    assert s.low < s.value < s.high and s.n == 101 and s.value == pytest.approx(float(np.median(values)))
    assert verdicts.median_interval([float("nan")]).n == 0


def test_runs_compared_share_u1_when_they_learned_the_same_direction_and_not_by_chance(
    tmp_path, cli, monkeypatch
) -> None:
    """And the pages draw them: several runs on one chart (Layers), alpha beside chance (Spectra)."""
    _run(tmp_path, cli, "principal", name="a")  # the base's own top directions: the same u1 in both runs
    _run(tmp_path, cli, "principal", name="b", seed=4)
    _run(tmp_path, cli, "gaussian", name="noise")
    rc, out, err = cli("claims", "a", "--compare", "b", "--compare", "noise", "--cache", tmp_path / "c", "--json")
    assert rc == 0, err
    rows = _by_id(json.loads(out))
    assert rows["u1-b"]["verdict"] == SUPPORTED and rows["u1-b"]["value"] > 0.99
    assert rows["u1-noise"]["verdict"] == CONTRADICTED
    assert rows["u1-noise"]["value"] < 5 * rows["u1-noise"]["chance_high"]  # near what chance gives
    rc, _, err = cli("claims", "a", "--compare", "nobody", "--cache", tmp_path / "c")
    assert rc == 2 and "run 'nobody'" in err
    _runs_overlaid_per_layer_and_alpha_drawn_beside_chance(tmp_path, monkeypatch)


def test_runs_updating_the_same_entries_overlap_above_chance_and_others_read_as_chance(tmp_path, cli) -> None:
    """Mukherjee et al.'s overlap: two runs with one mask (other values) overlap wholly, a run with another
    mask of the same density overlaps as chance does, pq / (p + q - pq) = 0.2^2 / 0.36."""
    alone = _by_id(_run(tmp_path, cli, "masked-1", name="a"))["mukherjee-3"]
    assert alone["verdict"] == NOT_MEASURABLE and "--compare" in alone["reason"]
    _run(tmp_path, cli, "masked-1", name="b", seed=4)
    _run(tmp_path, cli, "masked-2", name="c", seed=5)
    for other, verdict in (("b", SUPPORTED), ("c", CONTRADICTED)):
        rc, out, err = cli("claims", "a", "--compare", other, "--cache", tmp_path / "c", "--json")
        assert rc == 0, err
        row = _by_id(json.loads(out))["mukherjee-3"]
        assert row["verdict"] == verdict and row["chance"] == pytest.approx(0.04 / 0.36, abs=0.01), other
        assert row["n"] == 14 and row["reason"] == f"against {other} at step(s) 10"
    assert row["value"] == pytest.approx(row["chance"], abs=0.03)  # c: independent masks


def test_claims_page_shows_the_board_with_chance_and_says_what_to_do_without_one(tmp_path, cli, monkeypatch) -> None:
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    _run(tmp_path, cli, "rank1-sparse")
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "c"))
    at = AppTest.from_file(app, default_timeout=120)
    at.switch_page("rlvr_dashboard/views/claims.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert {"seed-1", "mukherjee-1", "zhu-3", "jin-1"} <= set(table["claim_id"])
    assert set(table["verdict"]) <= {"supported", "contradicted", "not measurable here"}
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name") for t in spec["data"]}
    assert {"chance band", "this run (median, 95% interval)"} <= names  # every measure beside its chance
    levels = Cache(tmp_path / "c").queries().chance_levels("rank1-sparse", "rank1_energy")
    assert sorted(zip(levels.rows, levels.cols)) == [(32, 64), (64, 64), (64, 160), (160, 64)]
    at.switch_page("rlvr_dashboard/views/layers.py").run()  # rank-1 energy of dW: a chance level per shape
    assert not at.exception
    layers = json.loads(at.get("plotly_chart")[0].proto.spec)
    ticks = layers["layout"]["coloraxis"]["colorbar"]
    lo, hi = f"{levels.chance.min():.3g}", f"{levels.chance.max():.3g}"
    assert ticks["tickvals"][-1] == levels.chance.min() and ticks["ticktext"][-1] == "▲ chance"  # the value: title
    assert f"chance (a Gaussian matrix, same shape): {lo} to {hi}" in layers["layout"]["title"]["text"]
    first = levels.iloc[0]
    said = [c.value for c in at.caption if c.value.startswith("What an i.i.d. Gaussian")]
    assert said and f"32×64: {first.chance:.3g} [{first.chance_low:.3g}, {first.chance_high:.3g}]" in said[0]
    assert first.chance_low <= first.chance <= first.chance_high < 0.2  # spread, not rank-1 (1.0)
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "empty"))
    at = AppTest.from_file(app, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/claims.py").run()
    assert not at.exception and "No analysed run" in at.info[0].value


def _runs_overlaid_per_layer_and_alpha_drawn_beside_chance(tmp_path, monkeypatch) -> None:
    """Layers page, several runs on one chart (by default the run and those its board compared): each run's
    line is its per-layer median from the cache, with the Gaussian matrix's chance as a dashed line over its
    band; the Spectra page's alpha charts carry the Gaussian matrix's alpha."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "c"))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.switch_page("rlvr_dashboard/views/layers.py").run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)  # a and its compared run, by default
    lines = {t["name"]: t for t in spec["data"] if not t["name"].startswith("chance")}
    assert set(lines) == {"a", "b", "noise"}
    cache = Cache(tmp_path / "c")
    for run, trace in lines.items():
        rows = [r for r in cache.read_step(run, 10, "layers").to_pylist() if r["target"] == "dW"]
        q_proj = {r["layer"]: r["rank1_energy"] for r in rows if r["module"] == "self_attn.q_proj"}
        x, y = plotted(trace["x"]), plotted(trace["y"])
        assert list(x) == sorted(q_proj) and list(y) == pytest.approx([q_proj[k] for k in x])
    level = cache.queries().chance_levels("a", "rank1_energy").set_index(["rows", "cols"]).loc[(64, 64)]
    dashed = next(t for t in spec["data"] if t["name"].startswith("chance"))
    assert list(plotted(dashed["y"])) == pytest.approx([level.chance] * 2) and dashed["line"]["dash"] == "dash"
    band = spec["layout"]["shapes"][0]
    assert (band["y0"], band["y1"]) == pytest.approx((level.chance_low, level.chance_high))
    for run in ("a", "b"):  # eight principal directions, weighted 8..1
        assert min(plotted(lines[run]["y"])) > 3 * level.chance_high
    assert max(plotted(lines["noise"]["y"])) < 2 * level.chance_high  # noise reads as chance
    at.switch_page("rlvr_dashboard/views/spectra.py").run()
    assert not at.exception
    alpha = cache.queries().chance_levels("a", "alpha")
    assert len(alpha) == 4 and (alpha.chance_low <= alpha.chance).all() and (alpha.chance <= alpha.chance_high).all()
    heat, over_steps = (json.loads(c.proto.spec) for c in at.get("plotly_chart")[1:3])
    assert "chance (a Gaussian matrix, same shape)" in heat["layout"]["title"]["text"]
    assert any(t["name"].startswith("chance: a Gaussian matrix") for t in over_steps["data"])
    said = [c.value for c in at.caption if "What an i.i.d. Gaussian matrix of each shape fits" in c.value]
    first = alpha.iloc[0]
    assert said and f"{int(first.rows)}×{int(first.cols)}: {first.chance:.3g}" in said[0]
