"""The spectral engine against numpy.linalg.svd: spectra, stats, triplets, zero matrices, signs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlvr_core.math.spectral import decompose, singular_values, spectrum_stats, top_triplets


def wide_spectrum(m: int, n: int, seed: int = 0) -> torch.Tensor:
    """A matrix whose singular values span 1 .. 1e-7 (log-spaced), so the precision claim is tested."""
    rng = np.random.default_rng(seed)
    r = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, r)))
    v, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = np.logspace(0, -7, r)
    return torch.from_numpy((u * s) @ v.T)


@pytest.mark.parametrize("shape", [(200, 60), (60, 200), (80, 80)])
def test_spectrum_matches_numpy_for_every_resolvable_sigma(shape) -> None:
    x = wide_spectrum(*shape)
    ours = singular_values(x).numpy()
    ref = np.linalg.svd(x.numpy(), compute_uv=False)
    assert ours.shape == ref.shape and np.all(np.diff(ours) <= 0)
    resolvable = ref >= 1e-4 * ref[0]
    rel = np.abs(ours - ref)[resolvable] / ref[resolvable]
    assert rel.max() < 1e-6
    assert not resolvable.all()  # the matrix does reach below the documented limit


@pytest.mark.parametrize("method", ["eigh", "lowrank"])
@pytest.mark.parametrize("shape", [(300, 120), (120, 300)])
def test_top_triplets_match_numpy(shape, method) -> None:
    gen = torch.Generator().manual_seed(3)
    m, n = shape
    sig = torch.tensor([8.0, 5.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.3, 0.2])
    u, _ = torch.linalg.qr(torch.randn(m, 10, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, 10, generator=gen, dtype=torch.float64))
    x = (u * sig.double()) @ v.T + 1e-4 * torch.randn(m, n, generator=gen, dtype=torch.float64)
    t = top_triplets(x, 8, method=method)
    U, S, Vt = np.linalg.svd(x.numpy(), full_matrices=False)
    np.testing.assert_allclose(t.sigma.numpy(), S[:8], rtol=1e-5)
    for i in range(8):
        sign = np.sign(np.dot(U[:, i], t.u[:, i].numpy()))
        np.testing.assert_allclose(t.u[:, i].numpy(), sign * U[:, i], atol=1e-5)
        np.testing.assert_allclose(t.v[:, i].numpy(), sign * Vt[i], atol=1e-5)


def test_sign_convention_is_deterministic_and_consistent() -> None:
    x = torch.randn(50, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, b = top_triplets(x, 4), top_triplets(-x, 4)
    for t in (a, b):
        idx = t.u.abs().argmax(dim=0)
        assert torch.all(t.u[idx, torch.arange(4)] > 0)  # largest |u| entry is positive
    recon = (a.u * a.sigma) @ a.v.T
    proj = a.u.T @ x @ a.v  # = diag(sigma) when signs of u and v agree
    torch.testing.assert_close(torch.diag(proj), a.sigma)
    assert torch.allclose(b.u, a.u) and torch.allclose(b.v, -a.v)
    assert recon.shape == x.shape


def test_stats_definitions() -> None:
    x = torch.diag(torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64))
    stats = decompose(x).stats
    assert stats.fro_norm == pytest.approx(5.0)
    assert stats.spectral_norm == pytest.approx(4.0)
    assert stats.stable_rank == pytest.approx(25 / 16)
    assert stats.rank1_energy == pytest.approx(16 / 25)


def test_zero_matrix_gives_zeros_never_nan() -> None:
    result = decompose(torch.zeros(7, 5), topk=8)
    assert torch.equal(result.sv, torch.zeros(5, dtype=torch.float64))
    assert (result.stats.fro_norm, result.stats.spectral_norm) == (0.0, 0.0)
    assert (result.stats.stable_rank, result.stats.rank1_energy) == (0.0, 0.0)
    assert result.triplets is not None and result.triplets.sigma.numel() == 0
    assert spectrum_stats(torch.zeros(3)).rank1_energy == 0.0


def test_rank_deficient_update_keeps_only_resolved_triplets() -> None:
    u = torch.randn(40, 2, dtype=torch.float64)
    v = torch.randn(30, 2, dtype=torch.float64)
    t = top_triplets(u @ v.T, 8)
    assert t.sigma.numel() == 2 and torch.isfinite(t.u).all()


def test_rejects_non_matrix() -> None:
    with pytest.raises(ValueError, match="2-D"):
        decompose(torch.zeros(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("method", ["eigh", "lowrank"])
def test_cuda_matches_cpu(method) -> None:
    x = wide_spectrum(400, 150)
    cpu = decompose(x, 8, "eigh")
    gpu = decompose(x.cuda(), 8, method)
    ref = np.linalg.svd(x.numpy(), compute_uv=False)
    resolvable = ref >= 1e-4 * ref[0]
    rel = np.abs(gpu.sv.cpu().numpy() - ref)[resolvable] / ref[resolvable]
    assert rel.max() < 1e-6
    torch.testing.assert_close(gpu.triplets.u.cpu(), cpu.triplets.u, atol=1e-5, rtol=0)
    torch.testing.assert_close(gpu.triplets.v.cpu(), cpu.triplets.v, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(5, 1), (1, 7), (2, 2)])
def test_tiny_shapes(shape) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = decompose(x, 8)
    np.testing.assert_allclose(result.sv.numpy(), np.linalg.svd(x.numpy(), compute_uv=False), rtol=1e-10)
    t = result.triplets
    torch.testing.assert_close((t.u * t.sigma) @ t.v.T, x)


@pytest.mark.parametrize("k", [1, 2, 8])
def test_any_topk(k: int) -> None:
    x = wide_spectrum(50, 30)
    t = top_triplets(x, k)
    U, S, Vt = np.linalg.svd(x.numpy(), full_matrices=False)
    assert t.sigma.numel() == k
    np.testing.assert_allclose(t.sigma.numpy(), S[:k], rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(t.u.numpy() * U[:, :k], axis=0)), 1.0, atol=1e-8)


@pytest.mark.parametrize("shape", [(300, 40), (40, 300)])
def test_blockwise_difference_matches_numpy(shape, monkeypatch) -> None:
    """dW = W - B in many float64 blocks (rows of a tall matrix, columns of a wide one): the same spectrum,
    triplets and zero share as numpy's SVD of the whole float64 difference."""
    from rlvr_core.math import spectral

    monkeypatch.setattr(spectral, "BLOCK_BYTES", 7 * 40 * 8)  # 7 rows (or columns) per block, a ragged last one
    gen = torch.Generator().manual_seed(3)
    b = (torch.randn(*shape, generator=gen) * 0.02).to(torch.bfloat16)
    w = b.float() + 1e-4 * torch.randn(*shape, generator=gen)
    w[:5] = b[:5].float()  # rows the update left alone: exact zeros of dW
    d = w.double().numpy() - b.double().numpy()
    u, s, vt = np.linalg.svd(d)
    got = decompose(w, topk=3, minus=b)
    np.testing.assert_allclose(got.sv.numpy(), s, rtol=1e-9, atol=1e-12 * s[0])
    assert got.triplets is not None
    for i in range(3):
        sign = np.sign(got.triplets.u[:, i].numpy() @ u[:, i])
        np.testing.assert_allclose(got.triplets.u[:, i].numpy(), sign * u[:, i], atol=1e-7)
        np.testing.assert_allclose(got.triplets.v[:, i].numpy(), sign * vt[i], atol=1e-7)
    assert got.stats.zero_fraction == pytest.approx(float((d == 0).mean()))
    assert got.stats.zero_fraction >= 5 * min(shape) / d.size
    whole = decompose(torch.from_numpy(d), topk=3)
    np.testing.assert_allclose(got.sv.numpy(), whole.sv.numpy(), rtol=1e-12, atol=1e-14 * s[0])
