"""Run-level results computed across the cached steps of a run: alignment and rank-1 dynamics.

Reads the step folders of one run through the cache (`Cache.read_step`) and writes two run-level views
atomically (`Cache.write_run_tables`):

    alignment       one row per (tensor, step): cosines and overlaps
    rank1_dynamics  one row per tensor: linearity of sigma1 * u1 over steps

The math is in `math.alignment`; this module streams the steps in order so memory holds a few steps'
top-k vectors at a time (a 7B step's vectors are ~140 MB), never the whole run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..cache import RUN_SCHEMAS, Cache
from ..math import alignment, chance
from ..math.alignment import RunningLineFit


@dataclass
class _Top:
    """One tensor's top-k triplets at one step."""

    sigma: np.ndarray
    u: np.ndarray  # (m, k)
    v: np.ndarray  # (n, k)


def is_current(cache: Cache, run: str) -> bool:
    """True when the run's alignment covers exactly its cached steps (after a killed analysis, or one run
    with --no-alignment, it does not, and the next analysis recomputes it)."""
    table = cache.read_run(run, "alignment", ["step"])
    if table is None or not cache.has_run_view(run, "rank1_dynamics"):
        return False
    return set(table.column("step").to_pylist()) == {s for s in cache.steps_with(run, "vectors") if s != 0}


def update_run(cache: Cache, run: str) -> tuple[int, int]:
    """Recompute the run-level files of `run` from its cached steps; returns (tensors, steps) covered."""
    steps = cache.steps_with(run, "vectors")
    base = _read_top(cache, run, 0, "W") if 0 in steps else {}
    steps = [s for s in steps if s != 0]
    if not steps:
        return 0, 0
    first, final = _read_top(cache, run, steps[0], "dW"), _read_top(cache, run, steps[-1], "dW")
    roles = _roles(cache, run, steps[-1])
    rows: list[dict] = []
    lines: dict[str, RunningLineFit] = {}
    prev: dict[str, _Top] = {}
    for step in steps:
        current = final if step == steps[-1] else first if step == steps[0] else _read_top(cache, run, step, "dW")
        for tensor, top in current.items():
            if tensor not in final or top.sigma.size == 0 or final[tensor].sigma.size == 0:
                continue
            rows.append(
                _row(
                    run,
                    tensor,
                    step,
                    top,
                    prev.get(tensor),
                    first.get(tensor),
                    final[tensor],
                    base.get(tensor),
                    roles.get(tensor, (None, None)),
                )
            )
            u1 = alignment.consistent_signs(top.u[:, :1].T, final[tensor].u[:, 0])[0]
            lines.setdefault(tensor, RunningLineFit()).add(float(step), top.sigma[0] * u1, float(top.sigma[0]))
        prev = current
    dynamics = [
        {
            "run": run,
            "tensor": t,
            "layer": roles.get(t, (None, None))[0],
            "module": roles.get(t, (None, None))[1],
            "n_steps": line.n,
            "r2_linear": line.r2(),
            "sigma1_first": line.first_sigma,
            "sigma1_final": line.last_sigma,
        }
        for t, line in lines.items()
    ]
    cache.write_run_tables(
        run,
        {
            "alignment": pa.Table.from_pylist(rows, schema=RUN_SCHEMAS["alignment"]),
            "rank1_dynamics": pa.Table.from_pylist(dynamics, schema=RUN_SCHEMAS["rank1_dynamics"]),
        },
    )
    return len(lines), len(steps)


def _row(
    run: str,
    tensor: str,
    step: int,
    top: _Top,
    prev: _Top | None,
    first: _Top | None,
    final: _Top,
    base: _Top | None,
    role: tuple,
) -> dict:
    u1, v1 = top.u[:, 0], top.v[:, 0]
    nan = math.nan
    return {
        "run": run,
        "tensor": tensor,
        "step": step,
        "layer": role[0],
        "module": role[1],
        "sigma1": float(top.sigma[0]),
        "cos_u_final": alignment.abs_cos(u1, final.u[:, 0]),
        "cos_v_final": alignment.abs_cos(v1, final.v[:, 0]),
        "cos_u_prev": alignment.abs_cos(u1, prev.u[:, 0]) if prev is not None and prev.sigma.size else nan,
        "cos_v_prev": alignment.abs_cos(v1, prev.v[:, 0]) if prev is not None and prev.sigma.size else nan,
        "cos_u_first": alignment.abs_cos(u1, first.u[:, 0]) if first is not None and first.sigma.size else nan,
        "cos_v_first": alignment.abs_cos(v1, first.v[:, 0]) if first is not None and first.sigma.size else nan,
        "overlap_topk_final": alignment.subspace_overlap(top.u, final.u),
        "overlap_base_principal": alignment.base_overlap(u1, base.u[:, : top.u.shape[1]]) if base is not None else nan,
        # what unrelated (uniformly random) directions would give (math.chance)
        "chance_cos_u": chance.abs_cos(u1.size).mean,
        "chance_cos_v": chance.abs_cos(v1.size).mean,
        "chance_overlap": top.u.shape[1] / u1.size if u1.size else nan,
    }


def _read_top(cache: Cache, run: str, step: int, target: str) -> dict[str, _Top]:
    table = cache.read_step(run, step, "vectors", ["tensor", "k", "sigma", "u", "v", "target"])
    if table is None:
        return {}
    tensors, ks = table.column("tensor").to_pylist(), table.column("k").to_pylist()
    targets, sigmas = table.column("target").to_pylist(), table.column("sigma").to_numpy()
    flat = {}
    for name in ("u", "v"):
        column = table.column(name).combine_chunks()
        flat[name] = (column.flatten().to_numpy(zero_copy_only=False), column.offsets.to_numpy())
    rows: dict[str, list[int]] = {}
    for i, (tensor, tgt) in enumerate(zip(tensors, targets)):
        if tgt == target:
            rows.setdefault(tensor, []).append(i)
    result = {}
    for tensor, index in rows.items():
        index.sort(key=lambda i: ks[i])
        vecs = {
            n: np.stack([values[offs[i] : offs[i + 1]] for i in index], axis=1).astype(np.float64)
            for n, (values, offs) in flat.items()
        }
        result[tensor] = _Top(sigmas[index], vecs["u"], vecs["v"])
    return result


def _roles(cache: Cache, run: str, step: int) -> dict[str, tuple]:
    table = cache.read_step(run, step, "layers", ["tensor", "layer", "module"])
    return {r["tensor"]: (r["layer"], r["module"]) for r in (table.to_pylist() if table is not None else [])}
