"""The geometry of one update dW = W_step - W_base against its base: the measures behind the rival claims.

Math only: arrays in, numbers out. For a matrix W_base = U_b diag(s_b) V_b^T (m x n) and W_step = W_base + dW
with singular values s_s and top singular vectors U_s, V_s:

- Update sparsity (Mukherjee et al. 2025, "Reinforcement Learning Finetunes Small Subnetworks in Large
  Language Models", arXiv 2505.11711): the share of entries left exactly unchanged, `mean(dW == 0)` on the
  stored values, and the share within a tolerance, `mean(|dW| <= atol)` for atol in `ATOLS` (their
  `torch.isclose(delta, 0, atol=tol)`; with 0 as the other side rtol plays no part).
- Numerical rank (the same paper's "nearly full-rank"): `torch.linalg.matrix_rank(dW.float())`, i.e. the
  number of singular values above s_1 * max(m, n) * eps(float32), and that count over min(m, n).
- Principal-subspace rotation (Zhu et al. 2025, "The Path Not Taken: RLVR Provably Learns Off the
  Principals", arXiv 2511.08567): the principal angles between span(U_b[:, :k]) and span(U_s[:, :k]) (and
  the same for V), k in `KS`; the largest angle in degrees (0: the top-k subspace did not turn), computed as
  `scipy.linalg.subspace_angles` does (equal to it: tests/test_geometry.py).
- Spectral drift (same paper): |s_s[:k] - s_b[:k]| / |s_b[:k]| (Euclidean norms) for k in `KS`, and over
  the whole spectrum.
- Off-principal share (same paper): the share of |dW|_F^2 outside both W_base's top-k column and row
  subspaces, |(I - P_U) dW (I - P_V)|_F^2 / |dW|_F^2 with P_U = U_b,k U_b,k^T, P_V = V_b,k V_b,k^T; by
  expanding the square, (|dW|^2 - |U^T dW|^2 - |dW V|^2 + |U^T dW V|^2) / |dW|^2, from dW V and U^T dW
  (accumulated block by block by `Projections`). An isotropic random update gives (1 - k/m)(1 - k/n).
- Values vs directions (Jin et al. 2025, "RL Is Neither a Panacea Nor a Mirage", arXiv 2508.16546: the
  rotation of singular vectors matters more than the change of singular values): the value share
  |s_s - s_b|^2 / |dW|_F^2, the least part of the update's energy that changing the singular values
  alone accounts for (Mirsky's inequality: |s_s - s_b| <= |dW|_F, so the share lies in [0, 1]); the rest,
  1 - value share, is what moving the singular directions takes.
- Overlap of updated subnetworks (Mukherjee et al. again: the entries updated by different runs from one
  base overlap far more than chance): each update keeps whether dW != 0 at `MASK_SAMPLE` positions drawn
  once per shape (the same positions in every run and step: `ChangedSample`), so two runs' Jaccard index
  |A & B| / |A | B| is estimated on those positions without keeping either mask; for independent masks of
  densities p and q it is pq / (p + q - pq) (`chance_jaccard`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .spectral import SpectrumStats

ATOLS = (1e-8, 1e-6, 1e-5, 1e-4)
"""The tolerances of the near-zero shares (Mukherjee et al.'s sweep)."""
KS = (1, 8, 32)
"""The sizes of the principal subspaces compared."""
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)
COUNT_CHUNK = 1 << 16
"""Entries per piece when counting |dW| <= atol (512 KiB of float64: stays in cache)."""
MASK_SAMPLE = 4096
"""Positions per tensor whose changed-or-not is kept (512 bytes a tensor and step; the Jaccard index of two
runs' masks is estimated on them to about +-0.01)."""
MEASURES_VERSION = 2
"""Part of a step's cached settings: a step analysed before these measures (or an older version) is redone."""


@dataclass(frozen=True)
class BaseVectors:
    """What the base step's analysis keeps of W_base for the measures: its whole spectrum and top vectors."""

    sv: np.ndarray
    """All singular values of W_base, descending."""
    u: np.ndarray
    """(m, K) top left singular vectors (K = min(32, what was kept))."""
    v: np.ndarray
    """(n, K) top right singular vectors."""


@functools.lru_cache(maxsize=256)
def sample_positions(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`MASK_SAMPLE` distinct (row, col) positions of an m x n matrix (all when smaller), sorted by row then
    column; drawn from a generator seeded by the shape alone, so every run and step uses the same ones."""
    m, n = shape
    size = m * n
    flat = np.sort(np.random.default_rng([m, n, 2505]).choice(size, min(size, MASK_SAMPLE), replace=False))
    return flat // n, flat % n


class ChangedSample:
    """Whether dW != 0 at `sample_positions(shape)`, filled block by block (row blocks of dW when `right`,
    else column blocks) and packed to bits (`np.packbits`) at the end."""

    def __init__(self, shape: tuple[int, int], right: bool) -> None:
        rows, cols = sample_positions(shape)
        self.right = right
        order = np.arange(rows.size) if right else np.lexsort((rows, cols))  # by the blocks' long side
        self.order, self.rows, self.cols = order, rows[order], cols[order]
        self.changed = np.zeros(rows.size, dtype=bool)

    def __call__(self, part: slice, block: torch.Tensor) -> None:
        along = self.rows if self.right else self.cols
        lo, hi = np.searchsorted(along, [part.start, part.start + block.shape[0 if self.right else 1]])
        if hi <= lo:
            return
        r, c = self.rows[lo:hi], self.cols[lo:hi]
        r, c = (r - part.start, c) if self.right else (r, c - part.start)
        index = torch.from_numpy(r).to(block.device), torch.from_numpy(c).to(block.device)
        self.changed[self.order[lo:hi]] = (block[index] != 0).cpu().numpy()

    def bits(self) -> bytes:
        return np.packbits(self.changed).tobytes()


def sample_jaccard(a: bytes, b: bytes, size: int) -> float | None:
    """The Jaccard index of two `ChangedSample` bit strings of `size` positions (None when both are empty)."""
    x = np.unpackbits(np.frombuffer(a, dtype=np.uint8))[:size].astype(bool)
    y = np.unpackbits(np.frombuffer(b, dtype=np.uint8))[:size].astype(bool)
    union = int(np.count_nonzero(x | y))
    return int(np.count_nonzero(x & y)) / union if union else None


def chance_jaccard(p: float, q: float) -> float | None:
    """The expected Jaccard index of independent masks of densities p and q: pq / (p + q - pq)."""
    union = p + q - p * q
    return p * q / union if union > 0 else None


@dataclass
class Projections:
    """Accumulates, block by block over dW, the counts and products the measures need: |dW| <= atol
    counts, dW V_b and U_b^T dW (float64, on the blocks' device; numpy at the end). Blocks are
    rows of dW (`right`: m >= n) or its columns."""

    base: BaseVectors | None
    right: bool
    step_side: torch.Tensor | None = None
    """W_step's top Gram-side singular vectors (V when `right`, else U); the pass forms the other side from
    W_step's blocks (W V, or W^T U), so W_step is not walked twice."""
    within: list[int] = field(default_factory=lambda: [0] * len(ATOLS))
    _dw_v: torch.Tensor | None = None
    _ut_dw: torch.Tensor | None = None
    _uv: tuple[torch.Tensor, torch.Tensor] | None = None
    _buffers: tuple[np.ndarray, np.ndarray] | None = None
    _other: torch.Tensor | None = None
    sample: ChangedSample | None = None
    """Where dW changed at the shape's sampled positions (the overlap of two runs' updates)."""

    def __call__(self, part: slice, block: torch.Tensor, whole: torch.Tensor | None = None) -> None:
        self._count(block)
        if self.sample is not None:
            self.sample(part, block)
        if self.step_side is not None and whole is not None:
            side = self.step_side.to(whole)
            if self._other is None:
                self._other = whole.new_zeros(self._long(), side.shape[1])
            self._other[part] = whole @ side if self.right else whole.T @ side
        if self.base is None:
            return
        if self._uv is None:
            self._uv = (torch.from_numpy(self.base.u).to(block), torch.from_numpy(self.base.v).to(block))
            m, n = self.base.u.shape[0], self.base.v.shape[0]
            self._dw_v = block.new_zeros(m, self.base.v.shape[1])
            self._ut_dw = block.new_zeros(self.base.u.shape[1], n)
        u, v = self._uv
        assert self._dw_v is not None and self._ut_dw is not None
        if self.right:  # block = dW[rows, :]
            self._dw_v[part] = block @ v
            self._ut_dw += u[part].T @ block
        else:  # block = dW[:, cols]
            self._dw_v += block @ v[part]
            self._ut_dw[:, part] = u.T @ block

    def _count(self, block: torch.Tensor) -> None:
        """|dW| <= atol counts (the exact zeros are counted by `spectral.decompose` itself: its
        `zero_fraction`); on CPU through numpy into reused buffers (5x faster than torch's elementwise ops
        single-threaded: 2 ms per million entries)."""
        if block.device.type != "cpu":
            on_device = block.abs()
            for i, atol in enumerate(ATOLS):
                self.within[i] += int((on_device <= atol).sum())
            return
        flat = block.numpy().reshape(-1)
        if self._buffers is None:
            self._buffers = (np.empty(COUNT_CHUNK), np.empty(COUNT_CHUNK, dtype=bool))
        for start in range(0, flat.size, COUNT_CHUNK):  # cache-sized pieces through reused buffers
            x = flat[start : start + COUNT_CHUNK]
            magnitude, mask = self._buffers[0][: x.size], self._buffers[1][: x.size]
            np.abs(x, out=magnitude)
            for i, atol in enumerate(ATOLS):
                self.within[i] += int(np.count_nonzero(np.less_equal(magnitude, atol, out=mask)))

    def _long(self) -> int:
        """The length of W's long side (the blocks run along it)."""
        if self.base is not None:
            return self.base.u.shape[0] if self.right else self.base.v.shape[0]
        raise ValueError("the step's other side needs the base's shape")

    def step_vectors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """W_step's top (U, V), the other side normalised, once the pass is over."""
        if self._other is None or self.step_side is None:
            return None
        other = self._other / self._other.norm(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
        side, other_np = self.step_side.cpu().numpy(), other.cpu().numpy()
        return (other_np, side) if self.right else (side, other_np)

    @property
    def dw_v(self) -> np.ndarray | None:
        """dW V_b, (m, K)."""
        return None if self._dw_v is None else self._dw_v.cpu().numpy()

    @property
    def ut_dw(self) -> np.ndarray | None:
        """U_b^T dW, (K, n)."""
        return None if self._ut_dw is None else self._ut_dw.cpu().numpy()


@dataclass(frozen=True)
class UpdateGeometry:
    """The measures of one update (None where the base's vectors or spectrum were not at hand)."""

    unchanged_share: float
    within_share: tuple[float, ...]
    numerical_rank: int
    numerical_rank_share: float
    rotation_u: tuple[float | None, ...] = (None,) * len(KS)
    rotation_v: tuple[float | None, ...] = (None,) * len(KS)
    drift_top: tuple[float | None, ...] = (None,) * len(KS)
    drift_all: float | None = None
    off_principal: tuple[float | None, ...] = (None,) * len(KS)
    value_share: float | None = None
    changed_sample: bytes | None = None
    """`ChangedSample.bits()`: dW != 0 at the shape's `sample_positions`."""


def numerical_rank(sv: np.ndarray, shape: tuple[int, int]) -> int:
    """`torch.linalg.matrix_rank(x.float())` from x's singular values: those above s_1 max(m, n) eps32."""
    if sv.size == 0 or sv[0] <= 0:
        return 0
    return int(np.sum(sv > sv[0] * max(shape) * FLOAT32_EPS))


def largest_angles(a: np.ndarray, b: np.ndarray, ks: tuple[int, ...]) -> list[float | None]:
    """For each k, the largest principal angle (degrees) between the spans of the first k columns of `a` and
    of `b` (None where either has fewer columns), as `scipy.linalg.subspace_angles` computes it: sines from
    the part of b's basis outside a's span for small angles, cosines otherwise. One QR per side serves
    every k (the first k columns of Q span the first k columns)."""
    have = min(a.shape[1], b.shape[1])
    if have == 0:
        return [None for _ in ks]
    qa, qb = np.linalg.qr(a[:, :have])[0], np.linalg.qr(b[:, :have])[0]
    out: list[float | None] = []
    for k in ks:
        if k > have:
            out.append(None)
            continue
        cross = qa[:, :k].T @ qb[:, :k]
        sin_max = float(np.linalg.norm(qb[:, :k] - qa[:, :k] @ cross, 2))
        if sin_max**2 < 0.5:
            angle = float(np.arcsin(min(sin_max, 1.0)))
        else:
            angle = float(np.arccos(min(float(np.linalg.svd(cross, compute_uv=False).min()), 1.0)))
        out.append(float(np.degrees(angle)))
    return out


def drift(s_step: np.ndarray, s_base: np.ndarray, k: int | None) -> float | None:
    """|s_step[:k] - s_base[:k]| / |s_base[:k]| (all of the spectrum when k is None)."""
    n = min(s_step.size, s_base.size) if k is None else k
    if n == 0 or s_step.size < n or s_base.size < n:
        return None
    ref = float(np.linalg.norm(s_base[:n]))
    return float(np.linalg.norm(s_step[:n] - s_base[:n])) / ref if ref > 0 else None


def value_share(s_step: np.ndarray, s_base: np.ndarray, fro_sq: float) -> float | None:
    """|s_step - s_base|^2 / |dW|_F^2 (Mirsky: at most 1)."""
    if fro_sq <= 0 or s_step.size != s_base.size:
        return None
    return min(float(np.sum((s_step - s_base) ** 2)) / fro_sq, 1.0)


def off_principal(p: Projections, fro_sq: float, k: int) -> float | None:
    """The share of |dW|_F^2 outside W_base's top-k column and row subspaces."""
    ut_dw, dw_v = p.ut_dw, p.dw_v
    if ut_dw is None or dw_v is None or p.base is None or fro_sq <= 0 or p.base.u.shape[1] < k:
        return None
    core = p.base.u[:, :k].T @ dw_v[:, :k]  # U^T dW V
    inside = float(np.sum(ut_dw[:k] ** 2)) + float(np.sum(dw_v[:, :k] ** 2)) - float(np.sum(core**2))
    return min(max(1.0 - inside / fro_sq, 0.0), 1.0)


def measure(
    p: Projections, dw: SpectrumStats, dw_sv: np.ndarray, shape: tuple[int, int], step_w: tuple | None
) -> UpdateGeometry:
    """Every measure of one update: `p` accumulated over dW's blocks, dW's stats (|dW|_F, its exact-zero
    share) and singular values, and `step_w` = (W_step's singular values, its top left and right vectors)
    when W_step was decomposed."""
    count = shape[0] * shape[1]
    rank = numerical_rank(dw_sv, shape)
    fro_sq = dw.fro_norm**2
    plain = UpdateGeometry(
        unchanged_share=dw.zero_fraction or 0.0,
        within_share=tuple(c / count if count else 0.0 for c in p.within),
        numerical_rank=rank,
        numerical_rank_share=rank / min(shape) if min(shape) else 0.0,
        changed_sample=p.sample.bits() if p.sample is not None else None,
    )
    base = p.base
    if base is None or step_w is None:
        return plain
    s_step, u_s, v_s = step_w
    return replace(
        plain,
        rotation_u=tuple(largest_angles(base.u, u_s, KS)),
        rotation_v=tuple(largest_angles(base.v, v_s, KS)),
        drift_top=tuple(drift(s_step, base.sv, k) for k in KS),
        drift_all=drift(s_step, base.sv, None),
        off_principal=tuple(off_principal(p, fro_sq, k) for k in KS),
        value_share=value_share(s_step, base.sv, fro_sq),
    )


def chance_off_principal(shape: tuple[int, int], k: int) -> float:
    """What an isotropic random update gives for the off-principal share: (1 - k/m)(1 - k/n)."""
    m, n = shape
    return max(1 - k / m, 0.0) * max(1 - k / n, 0.0)
