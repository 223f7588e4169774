"""`rlvr predict` (rank-k extrapolation of the update, AlphaRL's linear evolution) on a planted run of a
real tiny Llama: sigma_1 growing linearly in the step along a fixed direction, plus noise. The fitted
s(T) is within 1% of the truth, u1(t) is u1(T), and the written checkpoint loads with
AutoModelForCausalLM and equals the formula to 1e-6; the math on its own; the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlvr_core.cache import Cache
from rlvr_core.fixtures.hf_run import build_hf_run
from rlvr_core.math.predict import fit_line, predicted_sigmas, prediction_error


def test_the_line_fit_and_the_scores() -> None:
    steps = np.array([10.0, 20.0, 30.0])
    fit = fit_line(steps, 0.5 + 0.02 * steps)
    assert fit.slope == pytest.approx(0.02) and fit.intercept == pytest.approx(0.5) and fit.r2 == pytest.approx(1)
    assert fit_line(np.array([10.0]), np.array([0.3])).at(40) == pytest.approx(1.2)  # through the origin
    assert fit_line(steps, np.array([3.0, 2.0, 1.0])).at(100) == 0.0  # a singular value is never negative
    noisy = fit_line(steps, np.array([1.0, 0.0, 1.0]))
    assert noisy.r2 == pytest.approx(0.0)
    sigma_hat, fits = predicted_sigmas(steps, np.c_[0.1 * steps, 0.01 * steps], 50)
    assert np.allclose(sigma_hat, [5.0, 0.5]) and len(fits) == 2
    rng = np.random.default_rng(0)
    u, v = np.linalg.qr(rng.normal(size=(6, 2)))[0], np.linalg.qr(rng.normal(size=(4, 2)))[0]
    real = 2.0 * np.outer(u[:, 0], v[:, 0])
    exact = prediction_error(np.array([2.0]), u[:, :1], v[:, :1], -u[:, 0], 2.0, real)
    assert (exact.cos_u1, exact.sigma_error, exact.fro_error) == (pytest.approx(1), 0.0, pytest.approx(0))
    off = prediction_error(np.array([1.0]), u[:, 1:], v[:, 1:], u[:, 0], 2.0, real)
    assert off.cos_u1 == pytest.approx(0, abs=1e-12) and off.sigma_error == -0.5
    assert off.fro_error == pytest.approx(np.sqrt(5) / 2)  # orthogonal: sqrt(1 + 4) / 2


@pytest.mark.slow
def test_rlvr_predict_on_a_planted_run_writes_a_loadable_checkpoint(tmp_path, cli) -> None:
    from transformers import AutoModelForCausalLM

    fx = build_hf_run(tmp_path / "fx")
    cache, out = tmp_path / "cache", tmp_path / "predicted"
    argv = ["analyze", str(fx.run_dir), "--base", str(fx.base_dir), "--cache", str(cache), "--no-fits", "--quiet"]
    assert cli(*argv)[0] == 0
    code, said, err = cli("predict", "run", "--from-step", "20", "--to-step", "40", "--out", str(out), "--cache", cache)
    assert code == 0, err
    assert "14 weights predicted at step 40 from steps [10, 20]" in said and str(out) in said
    rows = Cache(cache).queries().predictions("run")
    assert len(rows) == 14 and set(rows.n_fit_steps) == {2}
    assert np.allclose(rows.sigma_pred, fx.sigma[40], rtol=0.01)  # s(T) within 1% of the truth
    assert (rows.sigma_error.abs() < 0.01).all() and (rows.cos_u1 > 0.99).all() and (rows.fro_error < 0.05).all()
    recipe = json.loads((out / "rlvr_prediction.json").read_text())
    assert recipe["fitted_steps"] == [10, 20] and len(recipe["predicted"]) == 14
    model = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(fx.base_dir).state_dict()
    vectors = Cache(cache).read_step("run", 20, "vectors").to_pylist()
    for name, weight in model.state_dict().items():
        if name not in fx.planted:
            assert torch.equal(weight, base[name]), name
            continue
        first = next(r for r in vectors if r["tensor"] == name and r["k"] == 1 and r["target"] == "dW")
        s_hat = rows.set_index("tensor").loc[name, "sigma_pred"]
        formula = base[name].double() + s_hat * torch.outer(torch.tensor(first["u"]), torch.tensor(first["v"])).double()
        assert torch.allclose(weight.double(), formula, atol=1e-6), name  # the formula, to 1e-6
    code, said, err = cli("predict", "run", "--from-step", "40", "--to-step", "100", "--cache", cache)
    assert code == 0 and "step 100 is not analysed" in said
    assert set(Cache(cache).queries().predictions("run").to_step) == {40, 100}


def test_rlvr_predict_says_what_is_wrong(tmp_path, cli) -> None:
    code, _, err = cli("predict", "nope", "--from-step", "20", "--to-step", "10", "--cache", tmp_path)
    assert code == 2 and "--to-step" in err and "a step after --from-step 20" in err
    code, _, err = cli("predict", "nope", "--from-step", "20", "--to-step", "40", "--cache", tmp_path)
    assert code == 2 and "an analysed step of run 'nope'" in err and "steps none" in err
