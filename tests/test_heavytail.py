"""Heavy-tail fits on planted spectra: known alpha recovered, exponential not heavy-tailed, no crash."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from rlvr_core.math.heavytail import fit_esd, log_histogram, scan_xmin
from rlvr_core.math.spectral import decompose


def pareto_sv(alpha: float, n: int, seed: int, xmin: float = 1.0) -> np.ndarray:
    """Singular values whose eigenvalues lambda = sv^2 follow p(lambda) ~ lambda^-alpha above xmin."""
    u = np.random.default_rng(seed).random(n)
    return np.sqrt(xmin * (1.0 - u) ** (-1.0 / (alpha - 1.0)))


@pytest.mark.parametrize("alpha,tolerance", [(2.5, 0.1), (4.5, 0.2)])
def test_planted_pareto_alpha_is_recovered(alpha: float, tolerance: float) -> None:
    fit = fit_esd(pareto_sv(alpha, 2000, seed=1))
    assert fit.fit_status == "ok"
    assert abs(fit.alpha - alpha) < tolerance, fit.alpha
    assert fit.alpha != 3.0  # powerlaw 2.0's default cap would return exactly 3
    assert fit.heavy_tailed and fit.lr_exponential > 0 and fit.p_exponential < 0.05
    assert fit.alpha_se == pytest.approx((fit.alpha - 1) / math.sqrt(fit.n_tail))
    assert fit.alpha_weighted == pytest.approx(fit.alpha * fit.log_spectral_norm)
    sv = pareto_sv(alpha, 2000, seed=1)
    assert fit.log_spectral_norm == pytest.approx(math.log10(sv.max() ** 2))
    assert fit.log_norm == pytest.approx(math.log10(np.sum(sv**2)))
    assert fit.log_fro_norm == pytest.approx(math.log10(np.linalg.norm(sv)))
    assert fit.stable_rank == pytest.approx(np.sum(sv**2) / sv.max() ** 2)


def test_exponential_spectrum_is_not_heavy_tailed() -> None:
    evals = np.random.default_rng(2).exponential(1.0, 2000) + 1e-3
    fit = fit_esd(np.sqrt(evals))
    assert fit.fit_status == "ok"
    assert not fit.heavy_tailed


def test_scan_matches_powerlaw_exhaustive_search() -> None:
    import powerlaw

    sv = pareto_sv(3.5, 400, seed=3) * np.random.default_rng(4).lognormal(0, 0.1, 400)
    evals = np.sort(sv**2)
    best, alphas, ds = scan_xmin(evals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(evals, parameter_ranges={"alpha": [1, None]}, verbose=False)
    assert evals[best] == pytest.approx(ref.xmin, rel=1e-12)
    assert alphas[best] == pytest.approx(ref.alpha, rel=1e-10)
    assert ds[best] == pytest.approx(ref.D, rel=1e-8)


@pytest.mark.parametrize(
    "sv,reason",
    [
        (np.zeros(64), "the matrix is zero"),
        (np.r_[np.full(3, 2.0), np.zeros(61)], "rank 3 of 64, as an update at a rank-3 substitution step"),
        (np.r_[5.0, np.full(63, 1e-9)], "rank 1 of 64, as an update at a rank-1 substitution step"),
        (np.r_[np.ones(40), np.full(40, 2.0)], "rank-deficient"),
        (np.ones(5), "too short"),
    ],
)
def test_degenerate_spectra_fail_cleanly(sv, reason) -> None:
    fit = fit_esd(sv)
    assert fit.fit_status == "failed" and reason in fit.fit_error
    assert math.isnan(fit.alpha) and not fit.heavy_tailed


def test_log_histogram_is_a_density() -> None:
    sv = pareto_sv(2.5, 1000, seed=5)
    lo, hi, density = log_histogram(sv, bins=40)
    assert len(lo) == len(hi) == len(density) == 40
    assert np.all(hi > lo) and np.allclose(lo[1:], hi[:-1])
    assert np.sum(density * (hi - lo)) == pytest.approx(1.0)
    assert log_histogram(np.zeros(10))[0].size == 0


def test_alternative_fits_reach_powerlaws_maximum_likelihood() -> None:
    """Our MLE fits of the alternatives are at least as likely as powerlaw's own (its TPL caps alpha at 3)."""
    import powerlaw

    from rlvr_core.math.heavytail import tail_loglikelihoods

    rng = np.random.default_rng(7)
    tail = np.sort(rng.lognormal(0.5, 0.8, 600))
    xmin = float(np.quantile(tail, 0.3))
    tail = tail[tail >= xmin]
    alpha = 1 + tail.size / np.sum(np.log(tail / xmin))
    ours = tail_loglikelihoods(tail, xmin, alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in (
            ("exponential", powerlaw.Exponential),
            ("lognormal", powerlaw.Lognormal),
            ("truncated_power_law", powerlaw.Truncated_Power_Law),
        ):
            ref = (
                cls(
                    data=tail,
                    xmin=xmin,
                    xmax=None,
                    discrete=False,
                    fit_method="Likelihood",
                    parameter_range=None,
                    parent_Fit=None,
                )
                .loglikelihoods(tail)
                .sum()
            )
            assert ours[name].sum() >= ref - 1e-6 * abs(ref), name


@pytest.mark.parametrize("a", [0.5, 1.01, 2.5, 10.0, 45.0])
@pytest.mark.parametrize("b", [1e-9, 1e-3, 1.0, 100.0])
def test_tpl_normaliser_matches_quadrature(a: float, b: float) -> None:
    from scipy.integrate import quad

    from rlvr_core.math.heavytail import tpl_normaliser

    if a <= 1 and b < 1e-6:
        pytest.skip("barely normalisable: the integral runs to t ~ 1/b")
    ref = quad(
        lambda t: 0.0 if t > 700 else math.exp((1 - a) * t - b * math.expm1(t)),
        0,
        math.inf,
        limit=400,
        epsabs=0,
        epsrel=1e-12,
    )[0]
    assert tpl_normaliser(a, b) == pytest.approx(ref, rel=1e-8)


def test_powerlaw_density_integrates_to_the_tail_fraction():
    from rlvr_core.math.heavytail import powerlaw_density

    x = np.logspace(0, 8, 200001)
    y = powerlaw_density(x, alpha=2.5, xmin=10.0, tail_fraction=0.3)
    assert np.isnan(y[x < 10]).all()
    keep = ~np.isnan(y)
    assert np.trapezoid(y[keep], x[keep]) == pytest.approx(0.3, rel=1e-3)


def _planted_update(seed: int = 3) -> torch.Tensor:
    """A 300 x 200 'update' U diag(s) V^T whose eigenvalues s^2 are Pareto-tailed (alpha 2.5), in float64."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(300, 200, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(200, 200, generator=gen, dtype=torch.float64))
    s = torch.from_numpy(np.sort(pareto_sv(2.5, 200, seed=seed))[::-1].copy())
    return (u * s) @ v.T


def test_dw_fits_are_scale_free():
    """The dW fit of c * dW gives the same alpha, KS distance and verdicts, and xmin * c^2, for c from
    1e-4 (a real 7B update's scale) to 100, through the real spectral engine."""
    delta = _planted_update()
    fits = {c: fit_esd(decompose(c * delta).sv.numpy(), relative_floor=True) for c in (1e-4, 1e-2, 1.0, 100.0)}
    ref = fits[1.0]
    assert ref.fit_status == "ok" and 2.0 < ref.alpha < 3.0
    for c, fit in fits.items():
        assert fit.fit_status == "ok", (c, fit.fit_error)
        assert abs(fit.alpha - ref.alpha) < 1e-9, (c, fit.alpha, ref.alpha)
        assert fit.xmin / c**2 == pytest.approx(ref.xmin, rel=1e-9)
        assert fit.ks_d == pytest.approx(ref.ks_d, abs=1e-9) and fit.n_tail == ref.n_tail
        assert fit.heavy_tailed == ref.heavy_tailed
        for name in ("lr_exponential", "lr_lognormal", "lr_truncated_power_law"):
            assert getattr(fit, name) == pytest.approx(getattr(ref, name), rel=1e-6, abs=1e-6), (c, name)
    # WeightWatcher's absolute floor (target W) drops the whole spectrum of a small update
    assert fit_esd(decompose(1e-4 * delta).sv.numpy()).fit_status == "failed"
    lo, _, _ = log_histogram(decompose(1e-4 * delta).sv.numpy(), relative_floor=True)
    assert lo.size == 60


def test_small_real_scale_updates_are_fitted_end_to_end(tmp_path, cli):
    """An fp32 run whose updates are of lr-1e-6 size (sigma1 1e-3, noise 1e-6): every dW fit succeeds."""
    from rlvr_core.cache import open_cache
    from rlvr_core.fixtures import ModelShape, build_run

    fx = build_run(tmp_path / "d", ModelShape(n_layers=1), steps=(10,), dtype="fp32", sigma=1e-3, noise=1e-6)
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", tmp_path / "c", "--quiet")[0] == 0
    status = (
        open_cache(tmp_path / "c")
        .execute("SELECT fit_status, count(*) FROM fits WHERE target = 'dW' GROUP BY fit_status")
        .fetchall()
    )
    assert status == [("ok", 7)]
