"""Run-level results computed across the cached steps of a run: alignment and rank-1 dynamics.

Reads the step folders of one run (Parquet, through pyarrow) and writes two run-level files atomically:

    <cache>/runs/<run>/alignment.parquet       one row per (tensor, step): cosines and overlaps
    <cache>/runs/<run>/rank1_dynamics.parquet  one row per tensor: linearity of sigma1 * u1 over steps

The math is in `alignment`; this module streams the steps in order so memory holds a few steps' top-k
vectors at a time (a 7B step's vectors are ~140 MB), never the whole run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import alignment, store

@dataclass
class _Top:
    """One tensor's top-k triplets at one step."""

    sigma: np.ndarray
    u: np.ndarray  # (m, k)
    v: np.ndarray  # (n, k)


@dataclass
class _Line:
    """Running sums for the straight-line fit of p_t = sigma1_t * u1_t over steps t."""

    n: int = 0
    st: float = 0.0
    stt: float = 0.0
    spp: float = 0.0
    sp: np.ndarray | None = None
    stp: np.ndarray | None = None
    first_sigma: float = math.nan
    last_sigma: float = math.nan

    def add(self, t: float, p: np.ndarray, sigma: float) -> None:
        if self.sp is None:
            self.sp, self.stp, self.first_sigma = np.zeros_like(p), np.zeros_like(p), sigma
        self.n += 1
        self.st += t
        self.stt += t * t
        self.spp += float(p @ p)
        self.sp += p
        self.stp += t * p
        self.last_sigma = sigma

    def r2(self) -> float:
        if self.n < 3 or self.sp is None:
            return math.nan
        total = self.spp - float(self.sp @ self.sp) / self.n
        stt_c = self.stt - self.st**2 / self.n
        if total <= 0.0 or stt_c <= 0.0:
            return math.nan
        slope = (self.stp - self.st * self.sp / self.n) / stt_c
        return 1.0 - max(total - float(slope @ slope) * stt_c, 0.0) / total


def update_run(cache: Path, run: str) -> tuple[int, int]:
    """Recompute the run-level files of `run` from its cached steps; returns (tensors, steps) covered."""
    run_dir = cache / "runs" / store.check_run_name(run)
    steps = sorted(int(p.name.split("-", 1)[1]) for p in run_dir.glob("step-*") if (p / "vectors.parquet").is_file())
    base = _read_top(run_dir / "step-0" / "vectors.parquet", "W") if 0 in steps else {}
    steps = [s for s in steps if s != 0]
    if not steps:
        return 0, 0
    first, final = _read_top(_vectors(run_dir, steps[0]), "dW"), _read_top(_vectors(run_dir, steps[-1]), "dW")
    roles = _roles(run_dir, steps[-1])
    rows, lines, prev = [], {}, {}
    for step in steps:
        current = final if step == steps[-1] else first if step == steps[0] else _read_top(_vectors(run_dir, step), "dW")
        for tensor, top in current.items():
            if tensor not in final or top.sigma.size == 0 or final[tensor].sigma.size == 0:
                continue
            rows.append(_row(run, tensor, step, top, prev.get(tensor), first.get(tensor), final[tensor],
                             base.get(tensor), roles.get(tensor, (None, None))))
            u1 = alignment.consistent_signs(top.u[:, :1].T, final[tensor].u[:, 0])[0]
            lines.setdefault(tensor, _Line()).add(float(step), top.sigma[0] * u1, float(top.sigma[0]))
        prev = current
    dynamics = [{"run": run, "tensor": t, "layer": roles.get(t, (None, None))[0],
                 "module": roles.get(t, (None, None))[1], "n_steps": line.n, "r2_linear": line.r2(),
                 "sigma1_first": line.first_sigma, "sigma1_final": line.last_sigma} for t, line in lines.items()]
    store.write_run_tables(cache, run, {
        "alignment": pa.Table.from_pylist(rows, schema=store.RUN_SCHEMAS["alignment"]),
        "rank1_dynamics": pa.Table.from_pylist(dynamics, schema=store.RUN_SCHEMAS["rank1_dynamics"])})
    return len(lines), len(steps)


def _row(run: str, tensor: str, step: int, top: _Top, prev: _Top | None, first: _Top | None, final: _Top,
         base: _Top | None, role: tuple) -> dict:
    u1, v1 = top.u[:, 0], top.v[:, 0]
    nan = math.nan
    return {
        "run": run, "tensor": tensor, "step": step, "layer": role[0], "module": role[1],
        "sigma1": float(top.sigma[0]),
        "cos_u_final": alignment.abs_cos(u1, final.u[:, 0]), "cos_v_final": alignment.abs_cos(v1, final.v[:, 0]),
        "cos_u_prev": alignment.abs_cos(u1, prev.u[:, 0]) if prev is not None and prev.sigma.size else nan,
        "cos_v_prev": alignment.abs_cos(v1, prev.v[:, 0]) if prev is not None and prev.sigma.size else nan,
        "cos_u_first": alignment.abs_cos(u1, first.u[:, 0]) if first is not None and first.sigma.size else nan,
        "cos_v_first": alignment.abs_cos(v1, first.v[:, 0]) if first is not None and first.sigma.size else nan,
        "overlap_topk_final": alignment.subspace_overlap(top.u, final.u),
        "overlap_base_principal": alignment.base_overlap(u1, base.u) if base is not None else nan,
    }


def _vectors(run_dir: Path, step: int) -> Path:
    return run_dir / f"step-{step}" / "vectors.parquet"


def _read_top(path: Path, target: str) -> dict[str, _Top]:
    if not path.is_file():
        return {}
    table = pq.read_table(path, columns=["tensor", "k", "sigma", "u", "v", "target"])
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
        vecs = {n: np.stack([values[offs[i]:offs[i + 1]] for i in index], axis=1).astype(np.float64)
                for n, (values, offs) in flat.items()}
        result[tensor] = _Top(sigmas[index], vecs["u"], vecs["v"])
    return result


def _roles(run_dir: Path, step: int) -> dict[str, tuple]:
    path = run_dir / f"step-{step}" / "layers.parquet"
    table = pq.read_table(path, columns=["tensor", "layer", "module"]).to_pylist()
    return {r["tensor"]: (r["layer"], r["module"]) for r in table}
