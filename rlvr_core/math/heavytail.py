"""Heavy-tail fits of empirical spectral densities (ESDs), WeightWatcher-comparable.

Math only: arrays in, numbers out.

ESD. For a weight matrix X (W or dW) with singular values sigma_i, the ESD is the set of eigenvalues
lambda_i = sigma_i^2 of X^T X, with no 1/N normalisation, exactly as WeightWatcher computes it
(`evals = sv**2` of the unnormalised weight). Before fitting, eigenvalues at or below a floor are dropped:

- target W (trained weights): WeightWatcher's absolute `EVALS_THRESH` = 1e-5, so our alpha equals
  WeightWatcher's.
- target dW (updates): a floor relative to the largest eigenvalue, lambda > lambda_max * `RELATIVE_THRESH`
  (1e-12). An absolute floor is wrong for updates: at lr 1e-6 a 7B update's singular values sit near 1e-3
  (lambda ~ 1e-6), below 1e-5, so almost every fit would fail on exactly the runs the tool exists for. A
  power-law exponent does not depend on the scale of the data, and with a relative floor neither does
  the fit: for any c > 0 the fit of c * dW has the same alpha, KS distance and likelihood-ratio verdicts,
  and xmin scaled by c^2. The factor drops only round-off: the Gram route's eigenvalues carry an absolute
  error of about 1e-16 * lambda_max, so below 1e-12 * lambda_max their relative error exceeds 1e-4 (the
  exact zeros of a low-rank update read as such round-off).

Power-law fit (Clauset, Shalizi & Newman 2009, the method of WeightWatcher's `WW_powerlaw.WWFit`). For
the ascending eigenvalues x_0 <= ... <= x_{N-1} and every candidate xmin = x_i (i < N - 1), with n = N - i:
    alpha_i = 1 + n / sum_{j>=i} log(x_j / x_i)                        (continuous MLE)
    D_i     = max_{j>=i} | 1 - (x_j / x_i)^(1 - alpha_i) - (j - i) / n |   (KS distance), 1 where alpha_i <= 1
The fit keeps the first i with the smallest D_i; its standard error is (alpha - 1) / sqrt(n). This scan
is evaluated for all candidates at once in blocks (vectorised, same formulas), which gives the same alpha
and xmin as `powerlaw.Fit(data, parameter_ranges={'alpha': [1, None]})` (bench/spectra.py checks that)
without powerlaw's default alpha cap at 3 (powerlaw issue #113).

Distribution comparisons at the chosen xmin: the alternatives (exponential, lognormal, truncated power
law, each normalised on [xmin, inf)) are fitted by maximum likelihood here, and the log-likelihood ratio R
with its p-value comes from `powerlaw.loglikelihood_ratio` (Vuong; nested test for the truncated power
law). `heavy_tailed` is R > 0 and p < 0.05 against the exponential.

WeightWatcher metrics: alpha_weighted = alpha * log10(lambda_max), log_spectral_norm = log10(lambda_max),
log_norm = log10(sum lambda) (= log10 ||X||_F^2, WeightWatcher's `log_norm`), log_fro_norm =
log10 ||X||_F, stable_rank = sum lambda / lambda_max (all over the eigenvalues above the floor for
lambda_max; the sums use every eigenvalue).

Drawing a fit (`ccdf`, `powerlaw_ccdf`): the empirical CCDF of the eigenvalues beside the fitted power law's,
(n_tail / n)(lambda / xmin)^(1 - alpha) above xmin, with its pointwise binomial band (Clauset, Shalizi &
Newman 2009); a log-binned histogram (`log_histogram`) leaves sparse tail bins empty.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

EVALS_THRESH = 1e-5
"""Target W: WeightWatcher's absolute eigenvalue floor."""
RELATIVE_THRESH = 1e-12
"""Target dW: the eigenvalue floor as a fraction of the largest eigenvalue (scale-free)."""
MIN_EVALS = 10
MIN_TAIL = 5
_BLOCK = 256


@dataclass(frozen=True)
class PowerLawFit:
    """One ESD's fit. When `fit_status` is 'failed', the numbers are NaN and `fit_error` says why."""

    alpha: float
    xmin: float
    alpha_se: float
    ks_d: float
    n_tail: int
    lr_exponential: float = math.nan
    p_exponential: float = math.nan
    lr_lognormal: float = math.nan
    p_lognormal: float = math.nan
    lr_truncated_power_law: float = math.nan
    p_truncated_power_law: float = math.nan
    heavy_tailed: bool = False
    alpha_weighted: float = math.nan
    log_spectral_norm: float = math.nan
    log_norm: float = math.nan
    log_fro_norm: float = math.nan
    stable_rank: float = math.nan
    n_evals: int = 0
    fit_status: str = "ok"
    fit_error: str | None = None


def esd(sv: np.ndarray) -> np.ndarray:
    """Eigenvalues lambda = sigma^2 (no normalisation), ascending."""
    return np.sort(np.asarray(sv, dtype=np.float64) ** 2)


def scan_xmin(evals: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Exact, vectorised xmin scan over ascending `evals`: (best index, alphas, KS distances)."""
    x = np.asarray(evals, dtype=np.float64)
    n_total = x.size
    logs = np.log(x)
    tail_sums = np.cumsum(logs[::-1])[::-1]  # sum_{j>=i} log x_j
    idx = np.arange(n_total - 1)
    n = (n_total - idx).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + n / (tail_sums[:-1] - n * logs[:-1])
    ds = np.ones(n_total - 1)
    for start in range(0, n_total - 1, _BLOCK):
        rows = idx[start : start + _BLOCK]
        cols = np.arange(start, n_total)  # j >= i only: the block's columns start at its first row
        a = alphas[rows][:, None]
        valid = cols[None, :] >= rows[:, None]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            theory = 1.0 - np.exp((1.0 - a) * (logs[start:][None, :] - logs[rows][:, None]))
            empirical = (cols[None, :] - rows[:, None]) / n[rows][:, None]
            gap = np.where(valid, np.abs(theory - empirical), -np.inf)
        block = gap.max(axis=1)
        ok = np.isfinite(alphas[rows]) & (alphas[rows] > 1)
        ds[rows] = np.where(ok, block, 1.0)
    best = int(np.argmin(ds))
    return best, alphas, ds


def eigen_floor(evals: np.ndarray, relative: bool) -> float:
    """The floor below which eigenvalues are dropped: `EVALS_THRESH`, or lambda_max * `RELATIVE_THRESH`."""
    if not relative:
        return EVALS_THRESH
    return float(evals.max()) * RELATIVE_THRESH if evals.size else 0.0


def fit_esd(sv: np.ndarray, compare: bool = True, relative_floor: bool = False) -> PowerLawFit:
    """Fit the ESD of singular values `sv` (any order). `relative_floor`: the scale-free floor of updates
    (target dW) instead of WeightWatcher's absolute one. Never raises on degenerate spectra."""
    evals = esd(sv)
    floor = eigen_floor(evals, relative_floor)
    kept = evals[evals > floor]
    if kept.size < MIN_EVALS:
        return _failed(_too_short(evals, kept.size, floor), evals)
    if np.unique(kept).size < MIN_EVALS:
        return _failed(f"only {np.unique(kept).size} distinct eigenvalues: the matrix is rank-deficient", evals)
    best, alphas, ds = scan_xmin(kept)
    n_tail = kept.size - best
    alpha = float(alphas[best])
    if not math.isfinite(alpha) or alpha <= 1.0 or n_tail < MIN_TAIL:
        return _failed(f"no power-law tail found (best alpha {alpha:.3g} over {n_tail} points)", evals)
    lam_max, total = float(kept[-1]), float(evals.sum())
    fit = PowerLawFit(
        alpha=alpha,
        xmin=float(kept[best]),
        alpha_se=(alpha - 1.0) / math.sqrt(n_tail),
        ks_d=float(ds[best]),
        n_tail=int(n_tail),
        alpha_weighted=alpha * math.log10(lam_max),
        log_spectral_norm=math.log10(lam_max),
        log_norm=math.log10(total),
        log_fro_norm=0.5 * math.log10(total),
        stable_rank=total / lam_max,
        n_evals=int(kept.size),
    )
    return _with_comparisons(fit, kept) if compare else fit


def _too_short(evals: np.ndarray, kept: int, floor: float) -> str:
    """Why fewer than `MIN_EVALS` eigenvalues are left: a zero matrix, a (numerically) low-rank one (an
    update at a rank-k substitution step is exactly rank k by design), or simply a short spectrum."""
    if not evals.size or float(evals.max()) == 0.0:
        return "every eigenvalue is 0: the matrix is zero (an unchanged weight), nothing to fit"
    if kept < evals.size:
        return (
            f"{kept} eigenvalue(s) above {floor:.3g} (need >= {MIN_EVALS}): the matrix is (numerically) rank "
            f"{kept} of {evals.size}, as an update at a rank-{kept} substitution step is by design; too short a "
            "spectrum to fit"
        )
    return f"{kept} eigenvalues (need >= {MIN_EVALS}): the spectrum is too short to fit"


def compare_tails(evals: np.ndarray, xmin: float, alpha: float) -> dict[str, float]:
    """Likelihood-ratio tests (R, p) of the power law (alpha, xmin) against the alternatives.

    Each alternative is fitted by maximum likelihood on the tail x >= xmin (`tail_loglikelihoods`),
    and R = sum(l_power - l_alt) with its p-value comes from `powerlaw.loglikelihood_ratio` (Vuong's
    test; the nested chi-square variant for the truncated power law), as
    `powerlaw.Fit.distribution_compare` computes them. powerlaw's own distribution classes are not used
    for the fits: they keep a module-global instance during optimisation (unsafe in the worker's
    threads: a fit hung there), their truncated power law caps alpha at 3, and their mpmath normaliser
    made single fits take seconds.
    """
    import powerlaw

    tail = np.sort(evals[evals >= xmin])
    power = np.log((alpha - 1.0) / xmin) - alpha * np.log(tail / xmin)
    out = {}
    for name, other in tail_loglikelihoods(tail, xmin, alpha).items():
        with np.errstate(all="ignore"):
            ratio, p = powerlaw.loglikelihood_ratio(
                power, other, nested=name == "truncated_power_law", normalized_ratio=False
            )
        out[f"lr_{name}"], out[f"p_{name}"] = float(ratio), float(p)
    return out


def tail_loglikelihoods(tail: np.ndarray, xmin: float, alpha: float) -> dict[str, np.ndarray]:
    """Pointwise log-likelihoods of the tail under the MLE exponential, lognormal and truncated power law,
    each normalised on [xmin, inf)."""
    return {
        "exponential": _exponential(tail, xmin),
        "lognormal": _lognormal(tail, xmin),
        "truncated_power_law": _truncated_power_law(tail / xmin, xmin, alpha),
    }


def _exponential(x: np.ndarray, xmin: float) -> np.ndarray:
    rate = 1.0 / max(float(np.mean(x)) - xmin, np.finfo(float).tiny)
    return np.log(rate) - rate * (x - xmin)


def _lognormal(x: np.ndarray, xmin: float) -> np.ndarray:
    """MLE lognormal truncated to [xmin, inf), with the analytic gradient (params mu, log sigma)."""
    from scipy.optimize import minimize
    from scipy.special import log_ndtr

    logs, log_xmin, n = np.log(x), math.log(xmin), x.size
    log_sqrt_2pi = 0.5 * math.log(2 * math.pi)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        mu, log_sigma = params
        sigma = math.exp(log_sigma)
        z, z0 = (logs - mu) / sigma, (log_xmin - mu) / sigma
        tail = float(log_ndtr(-z0))
        hazard = math.exp(-0.5 * z0 * z0 - log_sqrt_2pi - tail)  # phi(z0) / Phi(-z0)
        loglik = -float(logs.sum()) - n * (log_sigma + log_sqrt_2pi + tail) - 0.5 * float(z @ z)
        d_mu = (float(z.sum()) - n * hazard) / sigma
        d_log_sigma = -n + float(z @ z) - n * hazard * z0
        return -loglik, -np.array([d_mu, d_log_sigma])

    def pointwise(params: np.ndarray) -> np.ndarray:
        mu, sigma = params[0], math.exp(params[1])
        z = (logs - mu) / sigma
        return -logs - math.log(sigma) - log_sqrt_2pi - 0.5 * z * z - log_ndtr(-(log_xmin - mu) / sigma)

    spread = max(float(np.std(logs)), 1e-3)
    start = np.array([float(np.mean(logs)), math.log(spread)])
    bounds = [(log_xmin - 50 * spread - 10, float(logs[-1]) + 10), (math.log(1e-4), math.log(100.0))]
    best = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
    return pointwise(best.x)


def _truncated_power_law(y: np.ndarray, xmin: float, alpha0: float) -> np.ndarray:
    """MLE p(x) ~ x^-a exp(-lam x) on [xmin, inf); in y = x / xmin with b = lam * xmin, normalised by
    I(a, b) = int_1^inf y^-a exp(-b (y - 1)) dy (`tpl_normaliser`). Params (a, log b); the data terms'
    gradient is analytic, log I's by central differences."""
    from scipy.optimize import minimize

    log_y, n = np.log(y), y.size
    sum_log_y, sum_y1 = float(log_y.sum()), float((y - 1.0).sum())

    def log_norm(a: float, b: float) -> float:
        return math.log(tpl_normaliser(a, b))

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params[0], math.exp(params[1])
        ha, hb = 1e-6 * max(1.0, abs(a)), 1e-6 * b
        d_a = (log_norm(a + ha, b) - log_norm(a - ha, b)) / (2 * ha)
        d_b = (log_norm(a, b + hb) - log_norm(a, b - hb)) / (2 * hb)
        loglik = -a * sum_log_y - b * sum_y1 - n * log_norm(a, b)
        return -loglik, -np.array([-sum_log_y - n * d_a, b * (-sum_y1 - n * d_b)])

    start = np.array([max(alpha0 - 0.5, 0.5), math.log(max(0.1 / float(np.mean(y)), 1e-6))])
    bounds = [(0.0, alpha0 + 20.0), (math.log(1e-9), math.log(1e3))]
    best = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 300})
    a, b = best.x[0], math.exp(best.x[1])
    return -a * log_y - b * (y - 1.0) - log_norm(a, b) - math.log(xmin)


_LAGUERRE = np.polynomial.laguerre.laggauss(64)


def tpl_normaliser(a: float, b: float) -> float:
    """I(a, b) = int_1^inf y^-a e^{-b (y - 1)} dy = b^(a-1) U(a, a, b) (Tricomi's U; = e^b b^(a-1) Γ(1-a, b)).

    SciPy's `hyperu` is exact to ~1e-15 where it returns a number; where it does not (large a with small
    b) a 64-node Gauss-Laguerre rule in s = (a - 1) log y is exact to ~1e-15 there; adaptive quadrature
    is the last resort.
    """
    from scipy.special import hyperu

    with np.errstate(all="ignore"):
        value = float(b ** (a - 1.0) * hyperu(a, a, b))
    if not (math.isfinite(value) and value > 0.0) and a > 1.5:
        nodes, weights = _LAGUERRE
        value = float(np.sum(weights * np.exp(-b * np.expm1(nodes / (a - 1.0))))) / (a - 1.0)
    if not (math.isfinite(value) and value > 0.0):
        from scipy.integrate import quad

        def integrand(t: float) -> float:  # past t = 700, e^t overflows (and b e^t dominates)
            return 0.0 if t > 700.0 else math.exp((1.0 - a) * t - b * math.expm1(t))

        value = quad(integrand, 0.0, math.inf, limit=200)[0]
    return value


def powerlaw_density(x: np.ndarray, alpha: float, xmin: float, tail_fraction: float) -> np.ndarray:
    """The fitted power law as a density over the whole ESD (for drawing it over `log_histogram`):
    tail_fraction * (alpha - 1) / xmin * (x / xmin)^-alpha for x >= xmin, NaN below xmin."""
    x = np.asarray(x, dtype=np.float64)
    density = tail_fraction * (alpha - 1.0) / xmin * (x / xmin) ** (-alpha)
    return np.where(x >= xmin, density, np.nan)


def ccdf(sv: np.ndarray, relative_floor: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ESD's empirical CCDF (rank plot) above the floor (see `fit_esd`): the ascending eigenvalues
    lambda_i and the share of them >= lambda_i, (n - i) / n. Unlike a histogram it has no bins to leave
    empty, so a sparse tail is drawn as it is (Clauset, Shalizi & Newman 2009, section 3)."""
    evals = esd(sv)
    evals = evals[evals > eigen_floor(evals, relative_floor)]
    n = evals.size
    return evals, (n - np.arange(n)) / n if n else np.zeros(0)


def powerlaw_ccdf(
    x: np.ndarray, alpha: float, xmin: float, n_tail: int, n: int, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted power law's CCDF over the whole ESD, p(x) = (n_tail / n) (x / xmin)^(1 - alpha) for
    x >= xmin (NaN below), and its `level` binomial band: the share of n eigenvalues at or above x when each
    is, independently, with probability p(x). Returns (p, low, high)."""
    from scipy import stats as scipy_stats

    x = np.asarray(x, dtype=np.float64)
    p = np.where(x >= xmin, n_tail / n * (x / xmin) ** (1.0 - alpha), np.nan)
    q = np.clip(np.nan_to_num(p), 0.0, 1.0)
    low = scipy_stats.binom.ppf((1 - level) / 2, n, q) / n
    high = scipy_stats.binom.ppf(1 - (1 - level) / 2, n, q) / n
    return p, np.where(np.isnan(p), np.nan, low), np.where(np.isnan(p), np.nan, high)


def log_histogram(
    sv: np.ndarray, bins: int = 60, relative_floor: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-binned density of the ESD above the floor (see `fit_esd`): (bin_lo, bin_hi, density), density
    integrating to 1 over lambda."""
    evals = esd(sv)
    evals = evals[evals > eigen_floor(evals, relative_floor)]
    if evals.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    lo, hi = math.log10(evals[0]), math.log10(evals[-1])
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.logspace(lo, hi, bins + 1)
    counts, _ = np.histogram(evals, bins=edges)
    density = counts / (evals.size * np.diff(edges))
    return edges[:-1], edges[1:], density


_LIMITS: list = []


def single_threaded() -> None:
    """Make this process's BLAS single-threaded (a fit process must not spin threads against the
    analysis workers on the same cores). SciPy's own OpenBLAS is loaded first: threadpoolctl only limits
    libraries already loaded (an idle, unlimited OpenBLAS pool cost 10x the fits' own CPU time)."""
    import scipy.integrate
    import scipy.optimize
    import scipy.special  # noqa: F401
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=1))
    try:  # fits fill the gaps the analysis workers leave, rather than preempt them
        os.nice(10)
    except OSError:  # pragma: no cover - not permitted on some systems
        pass


def fit_with_histogram(
    sv: np.ndarray, relative_floor: bool = False
) -> tuple[PowerLawFit, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`fit_esd` and `log_histogram` of one spectrum (one call, for a worker process)."""
    return fit_esd(sv, relative_floor=relative_floor), log_histogram(sv, relative_floor=relative_floor)


def _with_comparisons(fit: PowerLawFit, evals: np.ndarray) -> PowerLawFit:
    try:
        tests = compare_tails(evals, fit.xmin, fit.alpha)
    except Exception as exc:  # a comparison that cannot be computed leaves NaNs, never a crash
        return PowerLawFit(**{**fit.__dict__, "fit_error": f"comparisons failed: {type(exc).__name__}: {exc}"})
    heavy = tests["lr_exponential"] > 0 and tests["p_exponential"] < 0.05
    return PowerLawFit(**{**fit.__dict__, **tests, "heavy_tailed": bool(heavy)})


def _failed(reason: str, evals: np.ndarray) -> PowerLawFit:
    nan = math.nan
    return PowerLawFit(
        alpha=nan,
        xmin=nan,
        alpha_se=nan,
        ks_d=nan,
        n_tail=0,
        n_evals=int(evals.size),
        fit_status="failed",
        fit_error=reason,
    )
