"""Alignment across steps and rank-1 dynamics: planted rotating u1 give the analytic cosines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlvr_core.cache.store import open_cache
from rlvr_core.fixtures import ModelShape, build_run
from rlvr_core.math.alignment import abs_cos, base_overlap, subspace_overlap, trajectory_r2

STEPS = (10, 20, 30, 40)
ROTATION = 0.02  # radians per step


@pytest.fixture
def rotating_run(tmp_path, cli):
    fx = build_run(
        tmp_path / "d",
        ModelShape(n_layers=1, hidden=24, intermediate=40, kv_dim=8),
        steps=STEPS,
        dtype="fp32",
        noise=0.0,
        rotate_u=ROTATION,
    )
    cache = tmp_path / "cache"
    rc, out, err = cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--no-fits")
    assert rc == 0, err
    return fx, open_cache(cache)


def test_planted_rotation_gives_analytic_cosines(rotating_run) -> None:
    fx, con = rotating_run
    rows = con.execute(
        "SELECT tensor, step, cos_u_final, cos_u_prev, cos_u_first, cos_v_final, cos_v_prev "
        "FROM alignment ORDER BY tensor, step"
    ).fetchall()
    assert len(rows) == len(fx.planted) * len(STEPS)
    for tensor, step, final, prev, first, v_final, v_prev in rows:
        assert final == pytest.approx(abs(math.cos(ROTATION * (step - STEPS[-1]))), abs=1e-6)
        assert first == pytest.approx(abs(math.cos(ROTATION * (step - STEPS[0]))), abs=1e-6)
        if step == STEPS[0]:
            assert math.isnan(prev) and math.isnan(v_prev)
        else:
            assert prev == pytest.approx(abs(math.cos(ROTATION * 10)), abs=1e-6)
        assert v_final == pytest.approx(1.0, abs=1e-6)  # v does not rotate


def test_rank1_dynamics_and_overlaps(rotating_run) -> None:
    fx, con = rotating_run
    dynamics = con.execute(
        "SELECT tensor, n_steps, r2_linear, sigma1_first, sigma1_final FROM rank1_dynamics"
    ).fetchall()
    assert len(dynamics) == len(fx.planted)
    for tensor, n, r2, first, final in dynamics:
        u, w = fx.planted[tensor][0].double().numpy(), fx.perpendicular[tensor].double().numpy()
        points = np.stack([fx.sigma[s] * (math.cos(ROTATION * s) * u + math.sin(ROTATION * s) * w) for s in STEPS])
        assert n == 4 and r2 == pytest.approx(trajectory_r2(np.array(STEPS, float), points), abs=1e-6)
        assert 0.9 < r2 < 0.999  # sigma grows linearly while u turns: close to, not on, a straight line
        assert first == pytest.approx(fx.sigma[STEPS[0]], rel=1e-5)
        assert final == pytest.approx(fx.sigma[STEPS[-1]], rel=1e-5)
    overlap = con.execute(
        "SELECT min(overlap_topk_final), max(overlap_base_principal) FROM alignment WHERE step = 40"
    ).fetchone()
    assert overlap[0] == pytest.approx(1.0, abs=1e-6)  # a rank-1 update: its top-1 subspace with itself
    assert 0.0 <= overlap[1] <= 1.0


def test_alignment_math() -> None:
    a = np.array([1.0, 0.0, 0.0])
    assert abs_cos(a, -a) == 1.0 and math.isnan(abs_cos(a, np.zeros(3)))
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((10, 4)))[0]
    assert subspace_overlap(q, q) == pytest.approx(1.0)
    assert subspace_overlap(q[:, :2], q[:, 2:]) == pytest.approx(0.0, abs=1e-12)
    assert base_overlap(q[:, 0], q[:, :2]) == pytest.approx(1.0)
    steps = np.array([1.0, 2.0, 3.0, 4.0])
    assert trajectory_r2(steps, np.outer(steps, [1.0, 2.0]) + 3.0) == pytest.approx(1.0)
    assert math.isnan(trajectory_r2(steps[:2], np.ones((2, 2))))


def test_alignment_by_module_aggregates_layers(tmp_path, cli) -> None:
    fx = build_run(
        tmp_path / "d",
        ModelShape(n_layers=3, hidden=16, intermediate=24, kv_dim=8),
        steps=STEPS,
        dtype="fp32",
        noise=0.0,
        rotate_u=ROTATION,
    )
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", tmp_path / "c", "--no-fits")[0] == 0
    con = open_cache(tmp_path / "c")
    rows = con.execute(
        "SELECT module, step, n_tensors, cos_u_final_mean, cos_u_final_q1, cos_u_final_median, "
        "cos_u_final_q3 FROM alignment_by_module ORDER BY module, step"
    ).fetchall()
    assert len(rows) == 7 * len(STEPS)
    for module, step, n, mean, q1, median, q3 in rows:
        expected = abs(math.cos(ROTATION * (step - STEPS[-1])))
        assert n == 3 and q1 <= median <= q3
        assert mean == pytest.approx(expected, abs=1e-6) and median == pytest.approx(expected, abs=1e-6)


def test_issue_view_columns(rotating_run) -> None:
    _, con = rotating_run
    expected = {
        "alignment": [
            "run",
            "tensor",
            "step",
            "cos_u_final",
            "cos_u_prev",
            "cos_u_first",
            "cos_v_final",
            "cos_v_prev",
            "cos_v_first",
            "overlap_topk_final",
            "overlap_base_principal",
        ],
        "fits": [
            "run",
            "step",
            "tensor",
            "target",
            "alpha",
            "xmin",
            "alpha_se",
            "ks_d",
            "n_tail",
            "lr_exponential",
            "p_exponential",
            "lr_lognormal",
            "p_lognormal",
            "lr_truncated_power_law",
            "p_truncated_power_law",
            "heavy_tailed",
            "alpha_weighted",
            "fit_status",
            "fit_error",
        ],
        "esd_hist": ["run", "step", "tensor", "target", "bin_lo", "bin_hi", "density"],
        "metrics": ["run", "step", "name", "value", "source"],
        "run_summary": ["run", "reward_metric", "test_metric", "spearman", "reward_peak_step", "test_peak_step"],
    }
    for view, columns in expected.items():
        assert [d[0] for d in con.execute(f"DESCRIBE {view}").fetchall()][: len(columns)] == columns
