"""Spectral engine: singular values, norms and top singular triplets of one weight matrix.

Math only: takes a tensor (on CPU or CUDA), returns tensors and numbers. No files, no cache.

Definitions (for a matrix X of shape m x n, singular values sigma_1 >= sigma_2 >= ... >= 0):
- Frobenius norm ||X||_F = sqrt(sum_i sigma_i^2); spectral norm sigma_1.
- Stable rank ||X||_F^2 / sigma_1^2 (Rudelson & Vershynin, 2007).
- Rank-1 energy sigma_1^2 / sum_i sigma_i^2: the share of ||X||_F^2 held by the rank-1 component
  (the quantity behind the "rank-1 update" finding of RLVR weight-update studies).
- A zero matrix (an untouched tensor, dW = 0) has every sigma = 0, stable rank 0 and rank-1 energy 0:
  never NaN.

How (exact, fast):
- The full spectrum comes from the Gram matrix of the smaller side, G = X^T X (n <= m) or X X^T, formed
  and diagonalised in float64: sigma_i = sqrt(max(lambda_i(G), 0)). On CPU G is summed over float64
  blocks of just over 32 MiB along the long side (BLAS `dsyrk` accumulating in place), so memory stays at the
  stored matrix plus G; dW = W_step - W_base is formed block by block in float64 the same way (exact for
  fp32/bf16 inputs), never as a whole float64 copy. The eigenvalues carry an absolute
  error of about 1e-16 * sigma_1^2, so each sigma_i has a relative error of about 1e-16 * (sigma_1 /
  sigma_i)^2: better than 1e-6 for every sigma_i >= 1e-4 * sigma_1. Smaller singular values lose relative
  precision (sigma_i below ~1e-7 * sigma_1 can read as 0); that is fine for spectra and ESD fits.
- Top-k triplets: `method="eigh"` takes the top-k eigenvectors of the same Gram matrix (exact to
  ~1e-16 * sigma_1^2 / (sigma_i * gap_i)); on CPU one LAPACK tridiagonal reduction yields both all
  eigenvalues and those k vectors (`symmetric_eigen`); `method="lowrank"` runs `torch.svd_lowrank` with q = 2k + 8
  and 6 power iterations, checks each sigma_i against the exact spectrum, and falls back to `eigh` when
  any is off by more than 1e-9 relative. The other side's vector is recovered as u = X v / sigma (or
  v = X^T u / sigma) and renormalised.
- Many same-shape matrices (a layer's experts) can go through `decompose_batch`: one batched Gram product
  and one batched `torch.linalg.eigh`, the GPU engine of `rlvr analyze --engine batched`.
- Triplets are returned only for sigma_i >= 1e-6 * sigma_1 (below that the Gram route cannot resolve
  the vectors); a zero matrix has none.
- Sign convention (deterministic): each u_i is flipped so that its entry of largest magnitude (the
  first one, on ties) is positive; v_i is flipped with it, so X ~ sum sigma_i u_i v_i^T still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

TRIPLET_MIN_RATIO = 1e-6
LOWRANK_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SpectrumStats:
    """Scalar summaries of one matrix's spectrum."""

    fro_norm: float
    spectral_norm: float
    stable_rank: float
    rank1_energy: float
    zero_fraction: float | None = None
    """Share of the matrix's entries that are exactly 0 (of dW: entries the update left unchanged at the
    stored precision; a 16-bit export rounds updates below its spacing to exactly 0)."""


@dataclass(frozen=True)
class Triplets:
    """Top singular triplets: X ~ sum_i sigma[i] * u[:, i] v[:, i]^T."""

    sigma: torch.Tensor
    """(r,) float64, descending."""
    u: torch.Tensor
    """(m, r) float64, unit columns."""
    v: torch.Tensor
    """(n, r) float64, unit columns."""


@dataclass(frozen=True)
class MatrixSpectrum:
    """Everything the engine computes for one matrix."""

    sv: torch.Tensor
    """All min(m, n) singular values, float64, descending."""
    stats: SpectrumStats
    triplets: Triplets | None
    """Top-k triplets when asked for (k > 0), else None."""


def gram(x: torch.Tensor, full: bool = True) -> tuple[torch.Tensor, bool]:
    """Float64 Gram matrix of the smaller side; the flag is True for X^T X (right vectors).

    On CPU it uses BLAS `dsyrk` (via SciPy), which computes one triangle: half the flops of a matrix
    product, with the same rounding; elsewhere a plain product. With `full=False` only the lower
    triangle is guaranteed (all the eigen-solvers here read), which saves mirroring it.
    """
    x = x.to(torch.float64)
    right = x.shape[0] >= x.shape[1]
    if x.device.type == "cpu":
        g = _syrk(x, right, None)
        if g is not None:
            return (g + torch.tril(g, -1).T if full else g), right
    return (x.T @ x if right else x @ x.T), right


def _syrk(x: torch.Tensor, right: bool, into) -> torch.Tensor | None:
    """The lower triangle of the Gram matrix (upper part zero), added in place to `into` (a Fortran-ordered
    float64 array from an earlier call) when given; None if BLAS cannot take `x`."""
    try:
        from scipy.linalg import blas
    except ImportError:  # pragma: no cover - scipy is a requirement; stay correct without it
        return None
    a = x.numpy()
    # BLAS sees a C-ordered array as its transpose in Fortran order, so pick `trans` to match.
    more = {} if into is None else {"beta": 1.0, "c": into, "overwrite_c": 1}
    if a.flags.c_contiguous:
        lower = blas.dsyrk(1.0, a.T, trans=0 if right else 1, lower=1, **more)
    elif a.flags.f_contiguous:
        lower = blas.dsyrk(1.0, a, trans=1 if right else 0, lower=1, **more)
    else:
        return None
    return torch.from_numpy(lower)


def singular_values(x: torch.Tensor) -> torch.Tensor:
    """All singular values of a 2-D tensor, float64, descending."""
    _check_2d(x)
    g, _ = gram(x, full=False)
    return _sqrt_desc(symmetric_eigen(g, 0)[0])


def spectrum_stats(sv: torch.Tensor, fro_sq: float | None = None) -> SpectrumStats:
    """Norms, stable rank and rank-1 energy from descending singular values (and ||X||_F^2 if known)."""
    total = float((sv.double() ** 2).sum()) if fro_sq is None else max(float(fro_sq), 0.0)
    top = float(sv[0]) if sv.numel() else 0.0
    if top <= 0.0 or total <= 0.0:
        return SpectrumStats(fro_norm=total**0.5, spectral_norm=max(top, 0.0), stable_rank=0.0, rank1_energy=0.0)
    return SpectrumStats(
        fro_norm=total**0.5, spectral_norm=top, stable_rank=total / top**2, rank1_energy=min(top**2 / total, 1.0)
    )


def decompose(
    x: torch.Tensor,
    topk: int = 0,
    method: str = "eigh",
    minus: torch.Tensor | None = None,
    observe: Callable[[slice, torch.Tensor, torch.Tensor], None] | None = None,
) -> MatrixSpectrum:
    """Full spectrum, stats and (for topk > 0) the top-k triplets of a 2-D tensor X, or of X - `minus`
    (dW = W_step - W_base) formed in float64 from the stored values. On CPU the work goes block by block
    along the long side (`BLOCK_BYTES` per block), so no float64 copy of the whole matrix is made.
    `observe(part, block, x_block)` sees each float64 block once (rows `part` of X - minus when m >= n, else
    columns; `x_block`: the same entries of X alone), in the same pass as the Gram matrix: measures that
    need every entry (`geometry.Projections`) cost no re-read."""
    _check_2d(x)
    if method not in ("eigh", "lowrank"):
        raise ValueError(f"method must be 'eigh' or 'lowrank', got {method!r}")
    if minus is not None and minus.shape != x.shape:
        raise ValueError(f"minus must have the shape of x {tuple(x.shape)}, got {tuple(minus.shape)}")
    if method == "lowrank" or x.device.type != "cpu":
        x = x.to(torch.float64) if minus is None else x.to(torch.float64) - minus.to(torch.float64)
        minus = None
    source = _Blocks(x, minus)
    g, zeros = source.gram(observe)  # the eigen-solvers below read the lower triangle only
    fro_sq = float(torch.trace(g))
    if topk <= 0 or method == "lowrank":
        sv = _sqrt_desc(symmetric_eigen(g, 0)[0])
        triplets = _lowrank_triplets(x, sv, topk) if topk > 0 else None
        if topk <= 0 or triplets is not None:
            return _with_zeros(MatrixSpectrum(sv, spectrum_stats(sv, fro_sq), triplets), zeros)
    evals, evecs = symmetric_eigen(g, min(topk, g.shape[0]))
    return _with_zeros(_with_triplets(source, _sqrt_desc(evals), evecs, topk, fro_sq), zeros)


BLOCK_BYTES = (32 << 20) + (64 << 10)
"""Least size of a float64 block when `decompose` walks a matrix on CPU: just over glibc's largest mmap
threshold (32 MiB), so every block is its own mapping, handed back to the OS when freed. Blocks just under
it were recycled through the heap and fragmented it: +1.3 GB resident after one 18944 x 3584 matrix."""


class _Blocks:
    """X (or X - minus) as float64 blocks along its long side: row blocks when m >= n (the Gram matrix
    is X^T X, `right`), column blocks otherwise (X X^T)."""

    def __init__(self, x: torch.Tensor, minus: torch.Tensor | None) -> None:
        self.x, self.minus = x, minus
        self.right = x.shape[0] >= x.shape[1]
        self.long, self.short = (x.shape[0], x.shape[1]) if self.right else (x.shape[1], x.shape[0])
        self.step = self.long if x.device.type != "cpu" else -(-BLOCK_BYTES // max(8 * self.short, 1))

    def __iter__(self):
        for part, block, _ in self.pairs():
            yield part, block

    def pairs(self):
        """(part, block of X - minus, block of X) in float64: the second is the first without `minus`."""
        for start in range(0, self.long, self.step):
            part = slice(start, start + self.step)
            index = (part, slice(None)) if self.right else (slice(None), part)
            whole = self.x[index].to(torch.float64)
            block = whole if self.minus is None else whole - self.minus[index].to(torch.float64)
            yield part, block.contiguous(), whole

    def gram(
        self, observe: Callable[[slice, torch.Tensor, torch.Tensor], None] | None = None
    ) -> tuple[torch.Tensor, float]:
        """The lower triangle of the float64 Gram matrix of the smaller side, and the share of exact zeros;
        `observe` sees each block."""
        g, zeros = None, 0
        for part, block, whole in self.pairs():
            if observe is not None:
                observe(part, block, whole)
            zeros += block.numel() - int(torch.count_nonzero(block))
            g = _accumulate(g, block, self.right)
        assert g is not None
        return g, zeros / self.x.numel() if self.x.numel() else 0.0

    def times(self, side: torch.Tensor) -> torch.Tensor:
        """X v (right) or X^T u (left) for the columns of `side`, block by block."""
        out = side.new_empty(self.long, side.shape[1])
        for part, block in self:
            out[part] = block @ side if self.right else block.T @ side
        return out


def _accumulate(g: torch.Tensor | None, block: torch.Tensor, right: bool) -> torch.Tensor:
    """g + the block's Gram contribution (lower triangle; BLAS `dsyrk` on CPU, accumulating in place)."""
    if block.device.type == "cpu":
        lower = _syrk(block, right, None if g is None else g.numpy())
        if lower is not None:
            return lower
    part = block.T @ block if right else block @ block.T
    return part if g is None else g.add_(part)


def spectrum_and_side(x: torch.Tensor, k: int) -> tuple[MatrixSpectrum, torch.Tensor, bool]:
    """X's spectrum and stats (no triplets), its top-k Gram-side singular vectors (V when m >= n, `right`,
    else U; only those resolved, see `TRIPLET_MIN_RATIO`) and `right`: the other side is left to the caller,
    which can form X V (or X^T U) in a pass it makes anyway (`geometry.Projections`)."""
    _check_2d(x)
    if x.device.type != "cpu":
        x = x.to(torch.float64)
    source = _Blocks(x, None)
    g, zeros = source.gram()
    fro_sq = float(torch.trace(g))
    evals, evecs = symmetric_eigen(g, min(k, g.shape[0]))
    sv = _sqrt_desc(evals)
    result = _with_zeros(MatrixSpectrum(sv, spectrum_stats(sv, fro_sq), None), zeros)
    return result, evecs[:, : _n_resolved(sv, k)], source.right


def _with_zeros(result: MatrixSpectrum, zeros: float) -> MatrixSpectrum:
    return replace(result, stats=replace(result.stats, zero_fraction=zeros))


def _zero_fraction(x: torch.Tensor) -> float:
    return float((x == 0).sum()) / x.numel() if x.numel() else 0.0


def decompose_batch(x: torch.Tensor, topk: int = 0) -> list[MatrixSpectrum]:
    """`decompose` (method `eigh`) of each matrix of a stack (B, m, n) of same-shape matrices, through one
    batched Gram product and one batched eigen-decomposition (`torch.linalg.eigh` / `eigvalsh`): on a GPU
    one call serves a batch of small expert matrices instead of one launch sequence each. The same
    formulas as `decompose`; the Gram matrix is a full product here (no `syrk`)."""
    if x.ndim != 3:
        raise ValueError(f"expected a 3-D stack of matrices, got shape {tuple(x.shape)}")
    x64 = x.to(torch.float64)
    zeros = [_zero_fraction(m) for m in x64]
    right = x64.shape[1] >= x64.shape[2]
    g = x64.transpose(1, 2) @ x64 if right else x64 @ x64.transpose(1, 2)
    fro_sq = torch.diagonal(g, dim1=1, dim2=2).sum(-1).tolist()
    if topk <= 0:
        evals = torch.linalg.eigvalsh(g)
        return [
            _with_zeros(MatrixSpectrum(sv, spectrum_stats(sv, f), None), z)
            for sv, f, z in zip(_sqrt_desc(evals, -1), fro_sq, zeros)
        ]
    evals, evecs = torch.linalg.eigh(g)
    k = min(topk, g.shape[1])
    top = evecs[..., -k:].flip(-1)
    return [
        _with_zeros(_with_triplets(_Blocks(x64[i], None), sv, top[i], topk, fro_sq[i]), zeros[i])
        for i, sv in enumerate(_sqrt_desc(evals, -1))
    ]


def _with_triplets(source: _Blocks, sv: torch.Tensor, top: torch.Tensor, topk: int, fro_sq: float) -> MatrixSpectrum:
    """The spectrum with its top triplets: `top` holds the Gram matrix's top eigenvectors (largest first);
    the other side's vectors are X v / sigma (or X^T u / sigma), renormalised."""
    keep = _n_resolved(sv, topk)
    side = top[:, :keep]
    right = source.right
    other = source.times(side)
    other = other / other.norm(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
    u, v = (other, side) if right else (side, other)
    return MatrixSpectrum(sv, spectrum_stats(sv, fro_sq), _fix_signs(Triplets(sv[:keep], u, v)))


def top_triplets(x: torch.Tensor, k: int, method: str = "eigh") -> Triplets:
    """The top-k singular triplets of a 2-D tensor (fewer when its numerical rank is below k)."""
    result = decompose(x, topk=max(k, 1), method=method)
    assert result.triplets is not None
    return result.triplets


def symmetric_eigen(g: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All eigenvalues of symmetric `g` (ascending) and its top-k eigenvectors (columns, largest first).
    Reads the lower triangle of `g` only.

    On CPU one LAPACK tridiagonal reduction serves both (`dsytrd`, then `dsterf` for all values,
    `dstebz` + `dstein` for the k vectors and `dormqr` to transform them back): what `dsyevr` does for
    a subset, without reducing twice; 1.4x faster than a full `eigh` for n = 896. Elsewhere (CUDA, or
    if LAPACK reports trouble) `torch.linalg.eigvalsh` / `eigh`.
    """
    if g.device.type == "cpu" and g.shape[0] >= 2:
        found = _lapack_eigen(g.numpy(), k)
        if found is not None:
            evals, evecs = found
            return torch.from_numpy(evals), torch.from_numpy(evecs)
    if k <= 0:
        return torch.linalg.eigvalsh(g), g.new_zeros(g.shape[0], 0)
    evals, evecs = torch.linalg.eigh(g)
    return evals, evecs[:, -k:].flip(1)


def _lapack_eigen(g, k: int):
    try:
        import numpy as np
        from scipy.linalg import lapack
    except ImportError:  # pragma: no cover - scipy is a requirement
        return None
    n = g.shape[0]
    lwork, info = lapack.dsytrd_lwork(n, lower=1)
    reflectors, d, e, tau, info = lapack.dsytrd(g, lower=1, lwork=int(lwork))
    if info != 0:
        return None
    evals, info = lapack.dsterf(d.copy(), e.copy())
    if info != 0:
        return None
    if k <= 0:
        return evals, np.zeros((n, 0))
    m, w, iblock, isplit, info = lapack.dstebz(d, e, 2, 0.0, 0.0, n - k + 1, n, 0.0, b"E")
    if info != 0 or m != k:
        return None
    z, info = lapack.dstein(d, e, w[:m], iblock, isplit)
    if info != 0:
        return None
    z = np.asfortranarray(z[:, :m])
    a = reflectors[1:, : n - 1]
    _, work, info = lapack.dormqr("L", "N", a, tau, z[1:], -1)
    rotated, _, info = lapack.dormqr("L", "N", a, tau, z[1:], int(work[0]))
    if info != 0:
        return None
    z[1:] = rotated
    return evals, z[:, ::-1].copy()  # a real copy: for k = 1 a reversed view still counts as contiguous


def _lowrank_triplets(x: torch.Tensor, sv: torch.Tensor, k: int) -> Triplets | None:
    keep = _n_resolved(sv, k)
    if keep == 0:
        return Triplets(sv[:0], x.new_zeros(x.shape[0], 0), x.new_zeros(x.shape[1], 0))
    q = min(2 * keep + 8, min(x.shape))
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # the same answer on every rerun
    try:
        u, s, v = torch.svd_lowrank(x, q=q, niter=6)
    finally:
        torch.random.set_rng_state(generator_state)
    exact = sv[:keep]
    if bool(((s[:keep] - exact).abs() > LOWRANK_TOLERANCE * exact).any()):
        return None  # not converged to the exact spectrum: the caller falls back to eigh
    return _fix_signs(Triplets(exact, u[:, :keep], v[:, :keep]))


def _n_resolved(sv: torch.Tensor, k: int) -> int:
    if sv.numel() == 0 or float(sv[0]) <= 0.0:
        return 0
    return int((sv[: min(k, sv.numel())] >= TRIPLET_MIN_RATIO * sv[0]).sum())


def _fix_signs(t: Triplets) -> Triplets:
    if t.sigma.numel() == 0:
        return t
    idx = t.u.abs().argmax(dim=0)
    signs = torch.sign(t.u.gather(0, idx.unsqueeze(0))).squeeze(0)
    signs[signs == 0] = 1.0
    return Triplets(t.sigma, t.u * signs, t.v * signs)


def _sqrt_desc(evals: torch.Tensor, dim: int = 0) -> torch.Tensor:
    return evals.clamp_min(0.0).sqrt().flip(dim)


def _check_2d(x: torch.Tensor) -> None:
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D tensor, got shape {tuple(x.shape)}")
