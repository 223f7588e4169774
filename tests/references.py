"""The reference of each update-geometry measure (issue: the claims board), computed from the two tensors
with the papers' own calls: `(delta != 0)` and `torch.isclose(delta, 0, atol)` shares (Mukherjee et al.),
`torch.linalg.matrix_rank(delta.float())`, and principal angles by `scipy.linalg.subspace_angles` (Zhu et al.);
and `plotted`, a figure's numbers as plotly wrote them (to compare a drawing with its data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from rlvr_core.math import geometry


def svd(x: torch.Tensor):
    u, s, vt = np.linalg.svd(x.numpy())
    return u, s, vt.T


def assert_measures_match(row, w_base: torch.Tensor, w_step: torch.Tensor) -> None:
    """One `update_geometry` row (a namedtuple) equals the references on the stored tensors."""
    wb, ws = w_base.double(), w_step.double()
    delta = ws - wb
    assert row.unchanged_share == float((delta == 0).double().mean()), row.tensor
    for tol, column in zip(geometry.ATOLS, ("within_e8", "within_e6", "within_e5", "within_e4"), strict=True):
        reference = torch.isclose(delta, torch.zeros(()).double(), atol=tol).double().mean()
        assert getattr(row, column) == float(reference), (row.tensor, column)
    assert row.numerical_rank == int(torch.linalg.matrix_rank(delta.float())), row.tensor
    (ub, _, vb), (us, _, vs) = svd(wb), svd(ws)
    for k in (1, 8, 32):
        if k <= min(delta.shape):
            ref_u = np.degrees(subspace_angles(ub[:, :k], us[:, :k]).max())
            ref_v = np.degrees(subspace_angles(vb[:, :k], vs[:, :k]).max())
            assert getattr(row, f"rotation_u_k{k}") == pytest.approx(ref_u, abs=1e-3), (row.tensor, k)
            assert getattr(row, f"rotation_v_k{k}") == pytest.approx(ref_v, abs=1e-3), (row.tensor, k)


def plotted(values):
    """A plotly trace's x or y as the figure's JSON holds it: a list, or base64 bytes with their dtype."""
    import base64

    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)
