"""Rank-k substitution: the rank-k part of an update, and in-place substitution of a model's weights."""

from __future__ import annotations

import pytest
import torch

from rlvr_core.errors import TensorMismatchError
from rlvr_core.training.periodic import rank_k_update, substitute_rank_k_


def planted(m: int = 40, n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    u, v = torch.randn(m, 1, generator=gen, dtype=torch.float64), torch.randn(1, n, generator=gen, dtype=torch.float64)
    u, v = u / u.norm(), v / v.norm()
    return 3.0 * u @ v + 0.01 * torch.randn(m, n, generator=gen, dtype=torch.float64), u, v


def test_truncated_rank1_is_the_best_rank1_approximation() -> None:
    delta, _, _ = planted()
    part = rank_k_update(delta, 1, "truncated")
    u, s, vh = torch.linalg.svd(delta)
    torch.testing.assert_close(part, s[0] * torch.outer(u[:, 0], vh[0]))
    torch.testing.assert_close(rank_k_update(delta, 24, "truncated"), delta)  # full rank: all of it


def test_norm_matched_keeps_the_frobenius_norm_and_alpha_scales() -> None:
    delta, u, v = planted()
    part = rank_k_update(delta, 1, "norm-matched")
    assert float(torch.linalg.norm(part)) == pytest.approx(float(torch.linalg.norm(delta)))
    assert abs(float(u[:, 0] @ part @ v[0])) == pytest.approx(float(torch.linalg.norm(delta)), rel=1e-3)
    torch.testing.assert_close(
        rank_k_update(delta, 2, "norm-matched", alpha=0.5), 0.5 * rank_k_update(delta, 2, "norm-matched")
    )


def test_zero_update_and_bad_arguments() -> None:
    assert torch.equal(rank_k_update(torch.zeros(5, 3), 1), torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="mode must be one of"):
        rank_k_update(torch.ones(2, 2), 1, "svd")
    with pytest.raises(ValueError, match="k must be >= 1"):
        rank_k_update(torch.ones(2, 2), 0)


class Tiny(torch.nn.Module):
    """Named like a Llama state dict: model.embed_tokens, model.layers.0.self_attn.q_proj, ..."""

    def __init__(self) -> None:
        super().__init__()
        self.model = torch.nn.Module()
        self.model.embed_tokens = torch.nn.Embedding(10, 8)
        block = torch.nn.Module()
        block.self_attn = torch.nn.Module()
        block.self_attn.q_proj = torch.nn.Linear(8, 8, bias=True)
        block.mlp = torch.nn.Module()
        block.mlp.up_proj = torch.nn.Linear(8, 16, bias=False)
        block.input_layernorm = torch.nn.LayerNorm(8)
        self.model.layers = torch.nn.ModuleList([block])


def test_substitute_changes_only_linear_block_weights() -> None:
    torch.manual_seed(0)
    model = Tiny()
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    changed = substitute_rank_k_(model, base, k=1)
    assert changed == ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"]
    params = dict(model.named_parameters())
    for name, p in params.items():
        if name in changed:
            delta = p.detach().double() - base[name].double()
            assert int(torch.linalg.matrix_rank(delta, rtol=1e-5)) == 1
            expected = rank_k_update(before[name].double() - base[name].double(), 1)
            torch.testing.assert_close(delta, expected, atol=1e-6, rtol=0)
        else:
            assert torch.equal(p.detach(), before[name])  # embeddings, biases, norms untouched
    only_q = Tiny()
    assert substitute_rank_k_(
        only_q, {n: p.detach().clone() for n, p in only_q.named_parameters()}, modules="q_proj"
    ) == ["model.layers.0.self_attn.q_proj.weight"]


def test_substitute_needs_every_base_weight() -> None:
    model = Tiny()
    with pytest.raises(
        TensorMismatchError, match="tensor 'model.layers.0.self_attn.q_proj.weight': expected present in the base"
    ):
        substitute_rank_k_(model, {})
