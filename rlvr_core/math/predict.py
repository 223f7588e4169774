"""Predict a late update from early checkpoints: rank-k extrapolation of dW.

AlphaRL (Cai et al., 2025, "On Predictability of Reinforcement Learning Dynamics for Large Language
Models") finds the RL update of each linear layer dominated by its top singular direction, which settles
early, while the update's size grows almost linearly in the step ("linear evolution"). So from the steps
<= t of a run one predicts step T > t as

    W_pred(T) = W_base + sum_{i<=k} s_i(T) u_i(t) v_i(t)^T,

where (u_i(t), v_i(t)) are the i-th singular vectors of dW(t) = W(t) - W_base and s_i(T) extrapolates
sigma_i over the steps <= t with a least-squares line in the step (`fit_line`; one step: the line
through the origin, sigma_i(0) = 0 since dW(0) = 0). The fit's R^2 says how linear the growth was.

How good a prediction is (`prediction_error`), given the real step T:
- cos(u1(t), u1(T)): |u1(t) . u1(T)| (sign-free; 1: the direction had settled by t);
- sigma_error: (s_1(T) - sigma_1(T)) / sigma_1(T) (signed, relative);
- fro_error: ||W_pred - W_T||_F / ||W_T - W_base||_F = ||P - dW(T)||_F / ||dW(T)||_F, with P the predicted
  update (0: perfect; 1: no better than predicting no update).
Arrays in, numbers out: no files, no models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LineFit:
    """sigma(step) ~= intercept + slope * step over the fitted steps."""

    slope: float
    intercept: float
    r2: float
    """Coefficient of determination of the fit (NaN with fewer than 3 steps: a line through 2 points is exact)."""
    n: int
    """How many steps were fitted."""

    def at(self, step: float) -> float:
        """The extrapolated value at `step` (never below 0: a singular value)."""
        return max(0.0, self.intercept + self.slope * step)


def fit_line(steps: np.ndarray, values: np.ndarray) -> LineFit:
    """The least-squares line of `values` over `steps` (one step: the line through the origin)."""
    x, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.size == 0 or x.size != y.size:
        raise ValueError(f"need as many values as steps (at least one), got {x.size} steps and {y.size} values")
    if x.size == 1:
        slope = float(y[0] / x[0]) if x[0] else 0.0
        return LineFit(slope, 0.0, float("nan"), 1)
    slope, intercept = np.polyfit(x, y, 1)
    fitted = intercept + slope * x
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - fitted) ** 2).sum()) / total if x.size >= 3 and total > 0 else float("nan")
    return LineFit(float(slope), float(intercept), r2, int(x.size))


def predicted_sigmas(steps: np.ndarray, sigmas: np.ndarray, to_step: float) -> tuple[np.ndarray, list[LineFit]]:
    """s_i(to_step) for each column i of `sigmas` (steps x k: sigma_i at each fitted step), and the fits."""
    sigmas = np.atleast_2d(np.asarray(sigmas, dtype=np.float64))
    fits = [fit_line(steps, sigmas[:, i]) for i in range(sigmas.shape[1])]
    return np.array([f.at(to_step) for f in fits]), fits


def predicted_update(sigma_hat: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """P = sum_i s_i u_i v_i^T (u: rows x k, v: cols x k, columns the singular vectors)."""
    return (np.asarray(u) * np.asarray(sigma_hat)) @ np.asarray(v).T


@dataclass(frozen=True)
class PredictionError:
    """How well step T was predicted (see the module docstring)."""

    cos_u1: float
    sigma_error: float
    fro_error: float


def prediction_error(
    sigma_hat: np.ndarray,
    u_t: np.ndarray,
    v_t: np.ndarray,
    u1_final: np.ndarray,
    sigma1_final: float,
    delta_final: np.ndarray,
) -> PredictionError:
    """Compare the prediction (s_i, u_i(t), v_i(t)) with the real step T: its top left vector, top singular
    value and whole update dW(T) (rows x cols, the same orientation as u x v)."""
    u_t, v_t = np.atleast_2d(np.asarray(u_t).T).T, np.atleast_2d(np.asarray(v_t).T).T
    cos = float(abs(np.dot(u_t[:, 0], u1_final)) / (np.linalg.norm(u_t[:, 0]) * np.linalg.norm(u1_final)))
    real = float(np.linalg.norm(delta_final))
    residual = float(np.linalg.norm(predicted_update(sigma_hat, u_t, v_t) - delta_final))
    sigma_error = (float(sigma_hat[0]) - sigma1_final) / sigma1_final if sigma1_final > 0 else float("nan")
    return PredictionError(cos, sigma_error, residual / real if real > 0 else float("nan"))
