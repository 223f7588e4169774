"""Mixture-of-experts checkpoints with each family's real tensor names (Qwen3-MoE, Mixtral, DeepSeek-V3;
`rlvr_core.fixtures.moe`): every expert matrix is found and labelled (layer, module kind, expert), its
spectrum equals numpy's, and a rank-1 update planted in one expert is recovered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlvr_core.cache import Cache
from rlvr_core.fixtures.moe import FAMILIES, build_moe
from rlvr_core.fixtures.moe_fused import LAYOUTS, build_fused
from rlvr_core.readers.checkpoint import Checkpoint


def _analysed(cli, fx, cache: Path, run: str):
    """`rlvr analyze --pair STEP --base BASE` of a fixture; a connection to the cache's views."""
    argv = ["analyze", "--pair", str(fx.step_dir), "--base", str(fx.base_dir), "--run", run, "--no-fits"]
    code, _, err = cli(*argv, "--cache", cache, "--quiet", "--device", "cpu")
    assert code == 0, err
    return Cache(cache).connect()


def _assert_planted_recovered(con, run: str, fx) -> None:
    """The planted sigma u v^T is dW's whole top triplet in its expert, and no other matrix moved."""
    planted = con.execute(
        "SELECT l.rank1_energy, l.spectral_norm, v.u, v.v FROM layers l JOIN vectors v "
        "USING (run, step, tensor, target) WHERE l.run = ? AND l.step = 1 AND l.target = 'dW' "
        "AND l.tensor = ? AND v.k = 1",
        [run, fx.planted],
    ).fetchone()
    assert planted[0] == pytest.approx(1, abs=1e-6) and planted[1] == pytest.approx(fx.sigma, rel=1e-5)
    assert abs(float(np.dot(planted[2], fx.u.numpy()))) == pytest.approx(1, abs=1e-5)
    assert abs(float(np.dot(planted[3], fx.v.numpy()))) == pytest.approx(1, abs=1e-5)
    others = con.execute(
        "SELECT max(spectral_norm) FROM layers WHERE run = ? AND step = 1 AND target = 'dW' AND tensor != ?",
        [run, fx.planted],
    ).fetchone()[0]
    assert others == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_every_expert_is_found_labelled_and_the_planted_update_recovered(family, tmp_path, cli) -> None:
    fx = build_moe(tmp_path / family, family)
    con = _analysed(cli, fx, tmp_path / "cache", "moe")
    rows = con.execute(
        "SELECT tensor, layer, module, expert FROM layers WHERE run = 'moe' AND step = 1 AND target = 'dW'"
    ).fetchall()
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == fx.names  # every expert, labelled
    experts = {r[3] for r in rows if r[3] is not None}
    assert experts == {0, 1, 2, 3} and any(r[2].endswith("gate") and r[3] is None for r in rows)  # the router
    name = next(n for n, (layer, _, e) in fx.names.items() if e == 3 and layer == 0)
    (sv,) = con.execute(
        "SELECT sv FROM spectra WHERE run = 'moe' AND step = 0 AND target = 'W' AND tensor = ?", [name]
    ).fetchone()
    weight = Checkpoint(fx.base_dir).read_tensor(name).double().numpy()
    assert np.allclose(sv, np.linalg.svd(weight, compute_uv=False), rtol=1e-6, atol=1e-9)  # numpy's spectrum
    _assert_planted_recovered(con, "moe", fx)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fused_expert_tensors_are_split_per_expert_as_the_models_forward_reads_them(layout, tmp_path, cli) -> None:
    """Written by transformers itself (gpt-oss's save_pretrained; Qwen3-MoE's fused state dict): each
    expert's gate, up and down matrix is found, labelled, equals the slice the model's forward applies
    (its spectrum is numpy's of that slice), and the planted update is recovered in the right expert."""
    fx = build_fused(tmp_path / layout, layout)
    con = _analysed(cli, fx, tmp_path / "cache", "fused")
    rows = con.execute(
        "SELECT tensor, layer, module, expert, rows, cols FROM layers "
        "WHERE run = 'fused' AND step = 1 AND target = 'dW' AND expert IS NOT NULL"
    ).fetchall()
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == fx.names  # 2 layers x 4 experts x gate, up, down
    assert {(r[4], r[5]) for r in rows if r[2].endswith("up_proj")} == {(8, 16)}  # out x in
    for name in ("model.layers.0.mlp.experts.1.gate_proj.weight", "model.layers.1.mlp.experts.3.down_proj.weight"):
        (sv,) = con.execute(
            "SELECT sv FROM spectra WHERE run = 'fused' AND step = 0 AND target = 'W' AND tensor = ?", [name]
        ).fetchone()
        expected = np.linalg.svd(fx.matrices[name].double().numpy(), compute_uv=False)
        assert np.allclose(sv, expected, rtol=1e-6, atol=1e-9), name
    _assert_planted_recovered(con, "fused", fx)  # not the gate half, not another expert
    listed = con.execute(
        "SELECT count(*) FROM tensors WHERE run = 'fused' AND step = 1 AND expert IS NOT NULL AND analyzed"
    ).fetchone()[0]
    assert listed == len(fx.names)


def test_the_layers_page_shows_experts_as_median_one_expert_and_a_layer_by_expert_grid(tmp_path, monkeypatch) -> None:
    import base64
    import json

    from streamlit.testing.v1 import AppTest

    from rlvr_core.cli import main

    fx = build_moe(tmp_path / "m", "qwen3_moe", layers=3, experts=6)
    cache = tmp_path / "cache"
    argv = ["analyze", "--pair", str(fx.step_dir), "--base", str(fx.base_dir), "--run", "moe", "--no-fits"]
    assert main([*argv, "--cache", str(cache), "--quiet", "--device", "cpu"]) == 0
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.switch_page("rlvr_dashboard/views/layers.py").run()
    assert not at.exception
    assert at.radio(key="url_experts_view").value == "median"  # aggregated over experts by default
    table = at.dataframe[0].value
    down = table[table["module"] == "mlp.experts.down_proj"]
    assert len(down) == 3 and down["experts"].tolist() == [6, 6, 6]  # one row per layer, quartiles over 6
    planted = down[down["layer"] == 1].iloc[0]
    assert planted["q3"] >= planted["median"] >= planted["q1"] and planted["median"] == 0  # 1 of 6 moved
    at.radio(key="url_experts_view").set_value("one").run()
    at.selectbox(key="url_expert").set_value(2).run()
    one = at.dataframe[0].value
    assert set(one["expert"].dropna()) == {2} and one["expert"].isna().any()  # that expert and the dense tensors
    assert one[one["tensor"] == fx.planted]["spectral_norm"].iloc[0] == pytest.approx(fx.sigma, rel=1e-5)
    at.radio(key="url_experts_view").set_value("grid").run()
    at.selectbox(key="url_expert_module").set_value("mlp.experts.down_proj").run()
    z = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"]
    if isinstance(z, dict):  # plotly's typed-array encoding
        shape = [int(n) for n in str(z["shape"]).split(",")]
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    z = np.asarray(z, dtype=float)
    assert z.shape == (3, 6)  # layers x experts
    assert z[1, 2] == pytest.approx(1, abs=1e-6) and z[0, 2] == 0  # rank-1 energy: the planted expert only
