"""The update's geometry against its base (issue: the claims board): each measure equals its reference,
and planted updates read as what was planted (`rlvr_core.math.geometry`, through the analysis's own path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlvr_core.cache import open_cache
from rlvr_core.fixtures.checkpoints import ModelShape, random_model, write_checkpoint
from rlvr_core.math import geometry, spectral
from rlvr_core.pipelines.matrix_work import decompose_pair
from rlvr_core.readers.formats import open_checkpoint

from .references import assert_measures_match, svd


def _base(shape=(96, 64), seed=0) -> torch.Tensor:
    """A matrix with a clear, decaying spectrum (random singular vectors)."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(shape[0], shape[0], generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(shape[1], shape[1], generator=gen, dtype=torch.float64))
    s = 0.9 ** torch.arange(min(shape), dtype=torch.float64)
    return (u[:, : len(s)] * s) @ v.T


def _measure(w_base: torch.Tensor, w_step: torch.Tensor) -> geometry.UpdateGeometry:
    top = spectral.decompose(w_base, 32)
    assert top.triplets is not None
    base = geometry.BaseVectors(top.sv.numpy(), top.triplets.u.numpy(), top.triplets.v.numpy())
    _, measured = decompose_pair(w_step, w_base, 0, 8, "eigh", base)
    assert measured is not None
    return measured


def test_off_principal_update_reads_as_off_principal_and_a_principal_one_as_on() -> None:
    w = _base()
    u, s, v = svd(w)
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(96, 64, generator=gen, dtype=torch.float64).numpy()
    pu, pv = np.eye(96) - u[:, :8] @ u[:, :8].T, np.eye(64) - v[:, :8] @ v[:, :8].T
    off = torch.from_numpy(1e-3 * pu @ g @ pv)
    on = torch.from_numpy(1e-3 * (u[:, :8] * np.arange(1, 9)) @ v[:, :8].T)
    chance = geometry.chance_off_principal((96, 64), 8)
    assert _measure(w, w + off).off_principal[1] > 0.999 > chance + 0.15
    assert _measure(w, w + on).off_principal[1] < 1e-6
    gaussian = _measure(w, w + torch.from_numpy(1e-3 * g))
    assert abs(gaussian.off_principal[1] - chance) < 0.05  # a random update reads as chance
    assert gaussian.numerical_rank_share == 1.0 and gaussian.unchanged_share == 0.0


def test_rotation_with_fixed_values_and_values_with_fixed_directions() -> None:
    w = _base()
    u, s, v = svd(w)
    turn = np.radians(10.0)  # u1 turned 10 degrees towards u2 (and u2 with it): the same singular values
    r = np.eye(96)
    r[:2, :2] = [[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]
    rotated = torch.from_numpy((u @ r)[:, :64] * s @ v.T)
    m = _measure(w, rotated)
    assert m.rotation_u[0] == pytest.approx(10.0, abs=1e-6) and m.rotation_u[1] < 1e-6  # top-1 turned; top-8 not
    assert m.rotation_v[0] < 1e-6 and m.value_share < 1e-12 and m.drift_all < 1e-12
    scaled = torch.from_numpy((u[:, :64] * (s * 1.01)) @ v.T)
    m = _measure(w, scaled)
    assert m.value_share == pytest.approx(1.0, abs=1e-9) and max(m.rotation_u) < 1e-5
    assert m.drift_top[0] == pytest.approx(0.01, rel=1e-9) and m.drift_all == pytest.approx(0.01, rel=1e-9)


def test_a_sparse_update_is_sparse_yet_nearly_full_rank() -> None:
    w = _base().to(torch.float32)
    gen = torch.Generator().manual_seed(2)
    mask = torch.rand(96, 64, generator=gen) < 0.05
    delta = torch.where(mask, 1e-3 * torch.randn(96, 64, generator=gen), torch.zeros(()))
    m = _measure(w, w + delta)
    stored = (w + delta) - w  # the update as stored
    assert m.unchanged_share == pytest.approx(float((stored == 0).double().mean()))
    assert m.unchanged_share > 0.9 and m.numerical_rank_share > 0.8  # Mukherjee et al.: sparse, nearly full-rank


def test_measures_equal_their_references_on_real_checkpoints(tmp_path, cli) -> None:
    """Through `rlvr analyze` on real safetensors (a bf16 base, an fp32 step with a sparse update in one
    matrix and dense ones elsewhere): each cached measure equals its reference computed from the files."""
    shape = ModelShape(hidden=64, intermediate=160, kv_dim=32, n_layers=2)
    base = random_model(shape, seed=0)
    gen = torch.Generator().manual_seed(5)
    step = {}
    for name, t in base.items():
        b = t.to(torch.bfloat16).float()
        if t.ndim == 2 and "proj" in name:
            delta = 3e-5 * torch.randn(t.shape, generator=gen)
            if name.endswith("0.self_attn.q_proj.weight"):
                delta *= torch.rand(t.shape, generator=gen) < 0.1
            b = b + delta
        step[name] = b
    write_checkpoint(tmp_path / "base", base, "bf16")
    write_checkpoint(tmp_path / "run" / "checkpoint-10", step, "fp32")
    rc, _, err = cli("analyze", tmp_path / "run", "--base", tmp_path / "base", "--cache", tmp_path / "c", "--no-fits",
                     "--quiet")  # fmt: skip
    assert rc == 0, err
    rows = open_cache(tmp_path / "c").execute("SELECT * FROM update_geometry WHERE step = 10").df()
    assert len(rows) == 14
    b_ck, s_ck = open_checkpoint(tmp_path / "base"), open_checkpoint(tmp_path / "run" / "checkpoint-10")
    for row in rows.itertuples():
        assert_measures_match(row, b_ck.read_tensor(row.tensor), s_ck.read_tensor(row.tensor))
    sparse = rows[rows.tensor == "model.layers.0.self_attn.q_proj.weight"].iloc[0]
    assert sparse.unchanged_share > 0.85 and sparse.numerical_rank_share == 1.0


@pytest.mark.parametrize("shape", [(96, 64), (40, 150)])
def test_the_changed_sample_is_dw_nonzero_at_the_same_positions_in_every_run(shape, monkeypatch) -> None:
    """Blocks of a few rows (or columns): the kept bits equal (dW != 0) at `sample_positions`, drawn from the
    shape alone; the sampled Jaccard of two masks equals theirs on those positions."""
    monkeypatch.setattr(spectral, "BLOCK_BYTES", 8 * min(shape) * 7)  # 7 rows (or columns) per block
    monkeypatch.setattr(geometry, "MASK_SAMPLE", 1000)
    geometry.sample_positions.cache_clear()
    gen = torch.Generator().manual_seed(2)
    w_base = torch.randn(shape, generator=gen)
    masks = [torch.rand(shape, generator=gen) < p for p in (0.3, 0.5)]
    bits = []
    for mask in masks:
        measured = _measure(w_base, w_base + mask * torch.randn(shape, generator=gen))
        assert measured.changed_sample is not None
        bits.append(measured.changed_sample)
        rows, cols = geometry.sample_positions(shape)
        kept = np.unpackbits(np.frombuffer(measured.changed_sample, dtype=np.uint8))[: rows.size].astype(bool)
        assert rows.size == 1000 and np.array_equal(kept, mask.numpy()[rows, cols])
    a, b = (m.numpy()[rows, cols] for m in masks)
    assert geometry.sample_jaccard(*bits, 1000) == np.count_nonzero(a & b) / np.count_nonzero(a | b)
    assert geometry.sample_jaccard(bits[0], bits[1], 1000) == pytest.approx(0.15 / 0.65, abs=0.05)
    assert geometry.chance_jaccard(0.3, 0.5) == pytest.approx(0.15 / 0.65)
    geometry.sample_positions.cache_clear()
