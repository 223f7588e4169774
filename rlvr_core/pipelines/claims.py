"""The claims board: each parameter-space claim about RLVR, measured on one run against chance, with a verdict.

`claims_run(cache, run, compare)` reads the run's last analysed step from the cache (`update_geometry`,
`layers`, `fits`, `alignment`, `checkpoints`, the base step's spectra), summarises each measure over
tensors (median and its interval: `verdicts.median_interval`), puts it beside its chance level
(`math.chance`: closed forms, or the tool's own code on Gaussian draws) and applies the claim's rule
(`math.verdicts`). It writes the run-level view `claims` (what the page and `rlvr report` show) and returns
the rows. Nothing here reads a weight: the base's spectrum stands in for W_base where a chance level
needs it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..cache import RUN_SCHEMAS, Cache
from ..math import chance, geometry, verdicts
from ..math.chance import Band
from ..math.verdicts import NOT_MEASURABLE, Summary

SEED = "the seed paper (RLVR's gain in the rank-1 part of each update)"
MUKHERJEE = "Mukherjee et al. 2025, arXiv 2505.11711"
ZHU = "Zhu et al. 2025, arXiv 2511.08567"
JIN = "Jin et al. 2025, arXiv 2508.16546"
DENSE = 0.99
"""A chance overlap at least this high (both runs changed nearly every entry) leaves nothing to compare."""
REPRESENTATIVES = 4
"""Tensors (distinct shapes first, from the middle layer) whose random-update chance levels are simulated."""


@dataclass
class Row:
    claim_id: str
    claim: str
    citation: str
    measure: str
    summary: Summary | None
    chance: Band | None
    verdict: str
    reason: str = ""


def claims_run(cache: Cache, run: str, compare: list[str] | None = None) -> list[dict]:
    """The claims board of `run` (and the cross-run rows with `compare`), written to its `claims` view."""
    steps = [s for s in cache.steps_with(run, "layers") if s > 0]
    if not steps:
        return []
    step = max(steps)
    data = _StepData(cache, run, step)
    rows = [_rank_one(data), _implicit(), _heavy(data), _alignment(cache, run)]
    rows += [_sparse(data), _full_rank(data), _overlap(cache, data, run, compare or [])]
    rows += [_drift(data), _rotation(data), _off_principal(data), _directions(data)]
    rows += [_shared_u1(cache, run, step, other) for other in compare or []]
    out = [_as_dict(run, step, r, compare) for r in rows]
    levels = pa.Table.from_pylist(_shape_chances(run, data), schema=RUN_SCHEMAS["chance_levels"])
    cache.write_run_tables(run, {"claims": pa.Table.from_pylist(out, schema=RUN_SCHEMAS["claims"]),
                                 "chance_levels": levels})  # fmt: skip
    return out


def _shape_chances(run: str, d: _StepData) -> list[dict]:
    """What an i.i.d. Gaussian matrix (or update) of each update shape gives for the measures that depend on
    the shape alone: the `chance_levels` rows the Layers and Spectra pages draw beside those measures.
    Simulated: rank-1 energy, stable rank (its inverse: |X|_F^2 / s_1^2) and alpha; exact: the off-principal
    share at k = 1, 8, 32 ((1 - k/m)(1 - k/n)), the numerical-rank share (1) and the unchanged share (0)."""
    out = []
    for rows, cols in sorted({(r["rows"], r["cols"]) for r in d.dw}):
        simulated = chance.gaussian_matrix((rows, cols))
        band = simulated["rank1_energy"]
        inverse = Band(1 / band.mean, 1 / band.high, 1 / band.low) if band.low > 0 else Band.exact(math.nan)
        levels = {"rank1_energy": band, "stable_rank": inverse, "alpha": simulated["alpha"],
                  "numerical_rank_share": Band.exact(1.0), "unchanged_share": Band.exact(0.0)}  # fmt: skip
        for k in geometry.KS:
            levels[f"off_principal_k{k}"] = Band.exact(geometry.chance_off_principal((rows, cols), k))
        for measure, b in levels.items():
            out.append({"run": run, "rows": rows, "cols": cols, "measure": measure, "chance": b.mean,
                        "chance_low": b.low, "chance_high": b.high})  # fmt: skip
    return out


class _StepData:
    """What the rules read of one step: dW's layers rows, W's fits, the geometry rows, precision, base sv."""

    def __init__(self, cache: Cache, run: str, step: int) -> None:
        self.step = step
        layers = _rows(cache.read_step(run, step, "layers"))
        self.dw = [r for r in layers if r["target"] == "dW"]
        self.fits = [r for r in _rows(cache.read_step(run, step, "fits")) if r["target"] == "W"]
        self.geometry = _rows(cache.read_step(run, step, "update_geometry"))
        row = cache.checkpoint_row(run, step) or {}
        self.dtype = row.get("weights_dtype") or ""
        self.sixteen_bit = self.dtype in ("BF16", "F16")
        """Read from 16-bit weights: exact zeros of dW reflect rounding as much as sparsity."""
        self.base_sv = cache.step_spectra(run, 0, "W")

    def summary(self, column: str, rows: list[dict] | None = None) -> Summary:
        return verdicts.median_interval([r.get(column) for r in (self.geometry if rows is None else rows)])

    @functools.cached_property
    def random_updates(self) -> list[dict[str, Band]]:
        """`chance.random_update` of each representative tensor, simulated once for every claim that needs it."""
        return [
            chance.random_update(self.base_sv[r["tensor"]], (r["rows"], r["cols"]), r["fro_norm"])
            for r in self.representatives()
        ]

    def representatives(self) -> list[dict]:
        """Up to `REPRESENTATIVES` dW rows of the middle layer (distinct shapes first) with a base spectrum."""
        layers = sorted({r["layer"] for r in self.dw if r["layer"] is not None})
        middle = layers[len(layers) // 2] if layers else None
        rows = [r for r in self.dw if r["layer"] == middle and r["tensor"] in self.base_sv and r["fro_norm"] > 0]
        seen, chosen = set(), []
        for r in sorted(rows, key=lambda r: r["tensor"]):
            if (r["rows"], r["cols"]) not in seen:
                seen.add((r["rows"], r["cols"]))
                chosen.append(r)
        return (chosen + [r for r in rows if r not in chosen])[:REPRESENTATIVES]


def _rank_one(d: _StepData) -> Row:
    claim = "The gain of each layer's update lives mostly in its rank-1 component (dW's rank-1 energy)"
    if not d.dw:
        return Row("seed-1", claim, SEED, "rank1_energy", None, None, NOT_MEASURABLE, "no analysed update")
    shapes = sorted({(r["rows"], r["cols"]) for r in d.dw})
    band = _pooled([chance.gaussian_matrix(s)["rank1_energy"] for s in shapes])
    m = d.summary("rank1_energy", d.dw)
    return Row("seed-1", claim, SEED, "rank1_energy", m, band, verdicts.rank_one(m, band))


def _implicit() -> Row:
    claim = "With periodic rank-1 substitution, test accuracy stays good while the training reward stays low"
    reason = (
        "a claim about training, not about one run's weights: compare a run trained with periodic rank-1 "
        "substitution and a plain one on their logs (docs/questions/substitution.md: 'Periodic rank-1 "
        "substitution in your own runs')"
    )
    return Row("seed-2", claim, SEED, "", None, None, NOT_MEASURABLE, reason)


def _heavy(d: _StepData) -> Row:
    claim = "The singular values of almost all linear layers are heavy-tailed (W's spectra)"
    fitted = [r for r in d.fits if r.get("fit_status") == "ok"]
    if not fitted:
        return Row("seed-3", claim, SEED, "heavy_tailed share", None, None, NOT_MEASURABLE, "no fits (--no-fits)")
    from ..math.stats import wilson_interval

    hits = sum(bool(r["heavy_tailed"]) for r in fitted)
    low, high = wilson_interval(hits, len(fitted))
    m = Summary(hits / len(fitted), low, high, len(fitted))
    shapes = sorted({(r["rows"], r["cols"]) for r in d.dw})[:REPRESENTATIVES]
    band = Band.of([chance.gaussian_matrix(s)["heavy_tailed"].mean for s in shapes]) if shapes else Band.exact(0.0)
    return Row("seed-3", claim, SEED, "heavy_tailed share", m, band, verdicts.heavy_tails(m.value, low, band))


def _alignment(cache: Cache, run: str) -> Row:
    from ..math.correlate import spearman

    claim = "The top left singular vectors u1 of the updates align more and more as training goes on"
    measure = "Spearman rho of median |cos(u1_t, u1_final)| over steps"
    rows = _rows(cache.read_run(run, "alignment", ["step", "cos_u_final"]))
    steps = sorted({r["step"] for r in rows})[:-1]  # the final step is 1 by construction
    if len(steps) < 3:
        return Row(
            "seed-4", claim, SEED, measure, None, None, NOT_MEASURABLE, "needs 3+ analysed steps before the last"
        )
    medians = [float(np.nanmedian([r["cos_u_final"] for r in rows if r["step"] == s])) for s in steps]
    found = spearman(np.array(medians), np.array(steps, dtype=float), 1999)
    m = Summary(found.rho, found.rho, found.rho, len(steps))
    reason = f"p = {found.p_value:.3g} over {len(steps)} steps; median |cos| before the last step {medians[-1]:.3f}"
    smallest = 2 / math.factorial(len(steps))  # a perfect rise, two-sided, of n distinct steps
    if smallest >= 0.05:
        reason += f"; over {len(steps)} steps even a perfect rise has p = {smallest:.3g}: analyse 5+ before the last"
        return Row("seed-4", claim, SEED, measure, m, Band.exact(0.0), NOT_MEASURABLE, reason)
    return Row("seed-4", claim, SEED, measure, m, Band.exact(0.0), verdicts.growing(found.rho, found.p_value), reason)


def _sparse(d: _StepData) -> Row:
    claim = "RL updates only a small subnetwork: 5-30% of the parameters change (the exactly-unchanged share)"
    if not d.geometry:
        return Row("mukherjee-1", claim, MUKHERJEE, "unchanged_share", None, None, NOT_MEASURABLE, "no geometry")
    m = d.summary("unchanged_share")
    if d.sixteen_bit:
        reason = f"16-bit export ({d.dtype}): sparsity reflects rounding; read the trainer's fp32 files"
        return Row("mukherjee-1", claim, MUKHERJEE, "unchanged_share", m, Band.exact(0.0), NOT_MEASURABLE, reason)
    reason = f"read from {d.dtype or 'the stored'} weights: an exact zero of dW is an entry the run never moved"
    return Row("mukherjee-1", claim, MUKHERJEE, "unchanged_share", m, Band.exact(0.0), verdicts.sparse(m), reason)


def _full_rank(d: _StepData) -> Row:
    claim = "Each layer's update is nearly full-rank (numerical rank over min(m, n))"
    if not d.geometry:
        return Row("mukherjee-2", claim, MUKHERJEE, "numerical_rank_share", None, None, NOT_MEASURABLE, "no geometry")
    m = d.summary("numerical_rank_share")
    return Row("mukherjee-2", claim, MUKHERJEE, "numerical_rank_share", m, Band.exact(1.0), verdicts.full_rank(m))


def _overlap(cache: Cache, d: _StepData, run: str, others: list[str]) -> Row:
    claim = "The subnetworks updated by different seeds, data or algorithms overlap far more than chance"
    measure = "Jaccard of updated entries (sampled positions)"
    if not others:
        reason = "needs a second run from the same base: rlvr claims RUN --compare OTHER"
        return Row("mukherjee-3", claim, MUKHERJEE, measure, None, None, NOT_MEASURABLE, reason)
    values, chances, steps = [], [], []
    for other in others:
        shared = _last_shared_step(cache, run, other, "update_geometry")
        if shared is not None:
            steps.append(shared)
            for j, c in _jaccards(cache, run, other, shared):
                values.append(j)
                chances.append(c)
    if not values:
        reason = "no shared analysed step with sampled masks (steps analysed before them: rlvr analyze --force)"
        return Row("mukherjee-3", claim, MUKHERJEE, measure, None, None, NOT_MEASURABLE, reason)
    m, band = verdicts.median_interval(values), Band.of(chances)
    reason = f"against {', '.join(others)} at step(s) {', '.join(map(str, steps))}"
    if d.sixteen_bit:
        reason += f"; {d.dtype} weights: the masks reflect rounding too"
    if band.low >= DENSE:
        reason += "; (nearly) every entry changed in both runs, so chance alone makes the overlap total"
        return Row("mukherjee-3", claim, MUKHERJEE, measure, m, band, NOT_MEASURABLE, reason)
    return Row("mukherjee-3", claim, MUKHERJEE, measure, m, band, verdicts.above_chance(m, band), reason)


def _jaccards(cache: Cache, run: str, other: str, step: int) -> list[tuple[float, float]]:
    """(sampled Jaccard, its chance level) of each tensor both runs updated at `step`."""
    columns = ["tensor", "rows", "cols", "unchanged_share", "changed_sample"]
    theirs = {r["tensor"]: r for r in _rows(cache.read_step(other, step, "update_geometry", columns))}
    out = []
    for a in _rows(cache.read_step(run, step, "update_geometry", columns)):
        b = theirs.get(a["tensor"])
        if b is None or a["changed_sample"] is None or b["changed_sample"] is None or a["rows"] != b["rows"]:
            continue
        size = min(a["rows"] * a["cols"], geometry.MASK_SAMPLE)
        j = geometry.sample_jaccard(a["changed_sample"], b["changed_sample"], size)
        c = geometry.chance_jaccard(1 - a["unchanged_share"], 1 - b["unchanged_share"])
        if j is not None and c is not None:
            out.append((j, c))
    return out


def _random_update_band(d: _StepData, name: str) -> Band | None:
    simulated = d.random_updates
    return _pooled([s[name] for s in simulated]) if simulated else None


def _pooled(bands: list[Band]) -> Band:
    """Several tensors' chance levels as one: the median of their means, the widest band."""
    return Band(float(np.nanmedian([b.mean for b in bands])), min(b.low for b in bands), max(b.high for b in bands))


def _geometry_row(d: _StepData, claim_id: str, claim: str, citation: str, column: str, chance_name: str, rule):
    m = d.summary(column)
    if m.n == 0:
        return Row(claim_id, claim, citation, column, None, None, NOT_MEASURABLE, "no base vectors (--no-base?)")
    band = _random_update_band(d, chance_name)
    if band is None:
        return Row(claim_id, claim, citation, column, m, None, NOT_MEASURABLE, "no base spectrum cached")
    return Row(claim_id, claim, citation, column, m, band, rule(m, band), "chance: a random update of the same norm")


def _drift(d: _StepData) -> Row:
    claim = "RLVR changes the singular values little (minimal spectral drift)"
    return _geometry_row(d, "zhu-1", claim, ZHU, "drift_all", "drift_all", verdicts.at_most_chance)


def _rotation(d: _StepData) -> Row:
    claim = "RLVR rotates the top principal subspaces little (top-8 left subspace, degrees)"
    return _geometry_row(d, "zhu-2", claim, ZHU, "rotation_u_k8", "rotation_u_k8", verdicts.at_most_chance)


def _off_principal(d: _StepData) -> Row:
    claim = "RLVR updates land off the base's principal directions (share outside its top-8 subspaces)"
    m = d.summary("off_principal_k8")
    if m.n == 0:
        return Row("zhu-3", claim, ZHU, "off_principal_k8", None, None, NOT_MEASURABLE, "no base vectors (--no-base?)")
    band = Band.of([geometry.chance_off_principal((r["rows"], r["cols"]), 8) for r in d.geometry])
    return Row("zhu-3", claim, ZHU, "off_principal_k8", m, band, verdicts.off_principal(m, band))


def _directions(d: _StepData) -> Row:
    claim = "The rotation of singular vectors matters far more than the change of singular values"
    rows = [{"direction_share": 1 - r["value_share"]} for r in d.geometry if r.get("value_share") is not None]
    m = d.summary("direction_share", rows)
    if m.n == 0:
        return Row("jin-1", claim, JIN, "1 - value_share", None, None, NOT_MEASURABLE, "no base spectrum cached")
    value = _random_update_band(d, "value_share")
    band = None if value is None else Band(1 - value.mean, 1 - value.high, 1 - value.low)
    return Row("jin-1", claim, JIN, "1 - value_share", m, band, verdicts.directions(m), _against_chance(m, band))


def _against_chance(m: Summary, band: Band | None) -> str:
    """Where a measure stands against a random update of the same norm, said beside a verdict whose rule does
    not use chance (a random update rotates far more than it rescales: jin-1's rule alone cannot tell RL
    from noise)."""
    if band is None:
        return "no chance level: no base spectrum cached"
    where = "above" if m.low > band.high else "below" if m.high < band.low else "at"
    return (
        f"{where} chance: a random update of the same norm gives {band.mean:.3g} [{band.low:.3g}, {band.high:.3g}]"
        + ("; any unstructured update rotates more than it rescales, so this says nothing specific to RL"
           if where == "at" and m.value >= 0.5 else "")
    )  # fmt: skip


def _shared_u1(cache: Cache, run: str, step: int, other: str) -> Row:
    claim = f"Run '{other}' finds the same u1 as this run (|cos| of dW's u1 per tensor, at their last shared step)"
    shared = _last_shared_step(cache, run, other, "vectors")
    mine = (cache.step_triplets(run, shared) if shared is not None else None) or {}
    theirs = (cache.step_triplets(other, shared) if shared is not None else None) or {}
    pairs = [(a[1][:, 0], theirs[t][1][:, 0]) for t, a in mine.items() if t in theirs]
    pairs = [(a, b) for a, b in pairs if a.size and b.size and a.shape == b.shape]
    if not pairs:
        return Row(f"u1-{other}", claim, SEED, "|cos u1|", None, None, NOT_MEASURABLE, "no shared analysed step")
    cos = [abs(float(a @ b)) / (float(np.linalg.norm(a) * np.linalg.norm(b)) or math.inf) for a, b in pairs]
    band = Band.of([chance.abs_cos(a.size).mean for a, _ in pairs])
    m = verdicts.median_interval(cos)
    return Row(f"u1-{other}", claim, SEED, "|cos u1|", m, band, verdicts.above_chance(m, band), f"step {shared}")


def _last_shared_step(cache: Cache, run: str, other: str, view: str) -> int | None:
    """The last trained step (not the base) at which both runs hold the per-step view `view`."""
    shared = set(cache.steps_with(run, view)) & set(cache.steps_with(other, view)) - {0}
    return max(shared) if shared else None


def as_json(rows: list[dict]) -> list[dict]:
    """Board rows as JSON can hold them: NaN (which JSON lacks) as null."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()} for r in rows]


def _rows(table) -> list[dict]:
    return [] if table is None else table.to_pylist()


def _as_dict(run: str, step: int, r: Row, compare: list[str] | None) -> dict:
    s, c = r.summary, r.chance
    return {
        "run": run, "step": step, "claim_id": r.claim_id, "claim": r.claim, "citation": r.citation,
        "measure": r.measure, "value": s.value if s else None, "low": s.low if s else None,
        "high": s.high if s else None, "n": s.n if s else None, "chance": c.mean if c else None,
        "chance_low": c.low if c else None, "chance_high": c.high if c else None, "verdict": r.verdict,
        "reason": r.reason, "compare": ",".join(compare or []),
    }  # fmt: skip
