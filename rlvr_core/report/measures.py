"""Every measure a chart or table shows: its readable label (with a unit where there is one), a one-line
definition (for the caption under a chart) and its range when bounded (cosines, overlaps, shares in [0, 1],
so a flat 1.0 is drawn flat). The update geometry's definitions and citations are in `math.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    label: str
    definition: str
    bounds: tuple[float, float] | None = None


MEASURES = {
    "rank1_energy": Measure("rank-1 energy σ1²/‖X‖²_F", "the share of ‖X‖²_F in the top singular direction", (0, 1)),
    "stable_rank": Measure("stable rank ‖X‖²_F/σ1²", "how many directions carry the energy (1: rank 1)"),
    "spectral_norm": Measure("σ1 (spectral norm)", "the largest singular value"),
    "fro_norm": Measure("‖X‖_F (Frobenius norm)", "the square root of the sum of squared entries"),
    "alpha": Measure("α (power-law exponent)", "the ESD's tail p(λ) ∝ λ^-α above xmin; 2 to 4: heavy-tailed"),
    "cos_u_final": Measure(
        "|cos(u1, u1 at the final step)|",
        "alignment of the top left singular vector of dW with the final step's",
        (0, 1),
    ),
    "cos_u_prev": Measure(
        "|cos(u1, u1 at the previous step)|", "how much u1 moved since the previous analysed step", (0, 1)
    ),
    "cos_u_first": Measure("|cos(u1, u1 at the first step)|", "u1 against the first analysed step's", (0, 1)),
    "cos_v_final": Measure("|cos(v1, v1 at the final step)|", "the same for the right singular vector", (0, 1)),
    "cos_v_prev": Measure("|cos(v1, v1 at the previous step)|", "how much v1 moved since the previous step", (0, 1)),
    "cos_v_first": Measure("|cos(v1, v1 at the first step)|", "v1 against the first analysed step's", (0, 1)),
    "overlap_topk_final": Measure(
        "top-k subspace overlap ‖U_kᵀU_k,final‖²_F/k", "how much of the top-k left subspace is the final step's", (0, 1)
    ),
    "overlap_base_principal": Measure(
        "u1 in the base's top directions",
        "the share of ‖u1‖² inside the span of W_base's top-k left singular vectors",
        (0, 1),
    ),
    "r2_linear": Measure(
        "R² of a straight line through σ1·u1",
        "1: the rank-1 part moves on a line over training (AlphaRL's linear dynamics)",
        (0, 1),
    ),
    "unchanged_share": Measure(
        "exactly-unchanged share of dW",
        "the share of entries with dW == 0 in the stored dtype (Mukherjee et al.)",
        (0, 1),
    ),
    "within_e6": Measure("share with |dW| ≤ 1e-6", "the share of entries within atol 1e-6 of unchanged", (0, 1)),
    "numerical_rank_share": Measure(
        "numerical rank of dW / min(m, n)", "torch.linalg.matrix_rank(dW) as a share of the full rank", (0, 1)
    ),
    "rotation_u_k8": Measure(
        "rotation of the top-8 left subspace (°)", "the largest principal angle between W_base's and W's (Zhu et al.)"
    ),
    "rotation_v_k8": Measure("rotation of the top-8 right subspace (°)", "the same for the right subspaces"),
    "drift_all": Measure(
        "spectral drift ‖s − s_base‖/‖s_base‖", "the relative change of W's whole spectrum (Zhu et al.)"
    ),
    "off_principal_k8": Measure(
        "off-principal share (k = 8)", "‖dW‖²_F outside W_base's top-8 left and right subspaces, over ‖dW‖²_F", (0, 1)
    ),
    "value_share": Measure(
        "value share of the change of W",
        "how much of ‖W − W_base‖_F the singular values' change alone explains (Jin et al.; 1 − it: the directions')",
        (0, 1),
    ),
    "accuracy": Measure("accuracy", "the share of problems answered correctly (pass@1)", (0, 1)),
    "recovery": Measure("recovery", "(acc rank-k − acc base) / (acc full − acc base): the share of the gain kept"),
}


def label(measure: str) -> str:
    return MEASURES[measure].label if measure in MEASURES else measure


def caption(*measures: str) -> str:
    """One line per measure: its label and definition (for `st.caption` under a chart)."""
    return "  \n".join(f"**{label(m)}**: {MEASURES[m].definition}" for m in measures if m in MEASURES)


def per_shape(levels) -> list[tuple[str, float, float, float]]:
    """(shape, mean, low, high) per update shape, from rows of the `chance_levels` view."""
    return [(f"{r.rows}×{r.cols}", r.chance, r.chance_low, r.chance_high) for r in levels.itertuples()]


def per_shape_text(chances: list[tuple[str, float, float, float]]) -> str:
    """Each shape's chance level as a caption says it: `128×128: 0.0306 [0.03, 0.031]; …`."""
    return "; ".join(f"{shape}: {mean:.3g} [{low:.3g}, {high:.3g}]" for shape, mean, low, high in chances)
