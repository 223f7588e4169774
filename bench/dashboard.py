"""Bench: the dashboard's time per page on a synthetic cache of a 7B-shaped run.

    python bench/dashboard.py [--workdir DIR] [--steps 50] [--repeats 3] [--no-spectra] [--keep] [--reuse]

Writes a cache the way the worker does (one Parquet folder per step through the cache owner
`rlvr_core.cache.Cache`, run-level files, evaluations): Qwen2.5-7B shapes (28 layers x 7 linear modules = 196
tensors; q/o 3584x3584, k/v 512x3584, gate/up 18944x3584, down 3584x18944), `--steps` analysed steps (10, 20,
...) plus the base, each with W and dW rows in `layers`, `tensors`, `fits` (with LR tests), `esd_hist` (64
bins), and full singular value lists in `spectra` (min(rows, cols) values per matrix, unless --no-spectra);
`alignment` for every tensor x step, `metrics` (reward, test accuracy, ... logged every step), `run_summary`,
and two comparisons (`evaluations`, 500 `eval_samples` each, `recovery`). Singular vectors are not written: no
page reads them.

Then each page runs headless in Streamlit's AppTest (the page script, its DuckDB queries over the Parquet
files, building the plotly figures and serialising them; not the browser's drawing): once (the first load)
and `--repeats` more times, then once after a selection change (pages with selections). Target: every
page's later runs <= 1 s. Prints seconds per page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from rlvr_core.cache import CACHE_ENV, EVAL_SCHEMAS, RUN_SCHEMAS, SCHEMAS, Cache, list_column
from rlvr_core.cache.views import ALIGNMENT_MEASURES

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "self_attn.q_proj": (3584, 3584),
    "self_attn.k_proj": (512, 3584),
    "self_attn.v_proj": (512, 3584),
    "self_attn.o_proj": (3584, 3584),
    "mlp.gate_proj": (18944, 3584),
    "mlp.up_proj": (18944, 3584),
    "mlp.down_proj": (3584, 18944),
}
LAYERS = 28
RUN = "qwen7b-grpo"
INTERACTIONS = {  # a selection change per page, timed too: (widget kind, key, value)
    "rlvr_dashboard/views/layers.py": ("selectbox", "url_metric", "stable_rank"),
    "rlvr_dashboard/views/spectra.py": ("selectbox", "url_group", "mlp.down_proj"),
    "rlvr_dashboard/views/alignment.py": ("selectbox", "url_group", "self_attn.q_proj"),
    "rlvr_dashboard/views/substitution.py": ("checkbox", "url_wrong", True),
}
PAGES = [
    "rlvr_dashboard/views/runs.py",
    "rlvr_dashboard/views/layers.py",
    "rlvr_dashboard/views/spectra.py",
    "rlvr_dashboard/views/alignment.py",
    "rlvr_dashboard/views/reward.py",
    "rlvr_dashboard/views/substitution.py",
    "rlvr_dashboard/views/jobs.py",
]


def tensor_rows() -> list[tuple[str, int, str, int, int]]:
    return [
        (f"model.layers.{layer}.{module}.weight", layer, module, rows, cols)
        for layer in range(LAYERS)
        for module, (rows, cols) in SHAPES.items()
    ]


def table(name: str, columns: dict, schemas=SCHEMAS) -> pa.Table:
    """A table of `name`'s schema from the given columns (the rest null)."""
    n = len(next(iter(columns.values())))
    schema = schemas[name]
    return pa.table(
        {f.name: columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema}, schema=schema
    )


def step_tables(step: int, rng: np.random.Generator, spectra: bool) -> dict[str, pa.Table]:
    tensors = tensor_rows()
    targets = ["W"] if step == 0 else ["W", "dW"]
    rows = [(t, target) for t in tensors for target in targets]
    n = len(rows)
    names = [t[0] for t, _ in rows]
    common = {"run": [RUN] * n, "step": [step] * n, "tensor": names, "target": [g for _, g in rows]}
    layers = {
        **common,
        "layer": [t[1] for t, _ in rows],
        "module": [t[2] for t, _ in rows],
        "rows": [t[3] for t, _ in rows],
        "cols": [t[4] for t, _ in rows],
        "kind": ["linear"] * n,
        "dtype": ["bfloat16"] * n,
        "fro_norm": rng.uniform(1, 100, n),
        "spectral_norm": rng.uniform(0.1, 10, n),
        "stable_rank": rng.uniform(1, 50, n),
        "rank1_energy": rng.uniform(0, 1, n),
    }
    fits = {
        **common,
        **{c: rng.uniform(1.5, 6, n) for c in ALIGNMENT_MEASURES},
        "n_tail": rng.integers(20, 400, n),
        "n_evals": [min(t[3], t[4]) for t, _ in rows],
        "heavy_tailed": rng.uniform(size=n) < 0.8,
        "fit_status": ["ok"] * n,
    }
    bins = 64
    edges = np.logspace(-4, 2, bins + 1)
    hist = {
        "run": [RUN] * (n * bins),
        "step": [step] * (n * bins),
        "tensor": np.repeat(names, bins),
        "target": np.repeat(common["target"], bins),
        "bin_lo": np.tile(edges[:-1], n),
        "bin_hi": np.tile(edges[1:], n),
        "density": rng.lognormal(size=n * bins),
    }
    out = {
        "checkpoints": table(
            "checkpoints",
            {
                "run": [RUN],
                "step": [step],
                "path": [f"/models/{RUN}/checkpoint-{step}"],
                "fingerprint": [f"fp{step}"],
                "n_tensors": [339],
                "n_analyzed": [196],
                "is_base": [step == 0],
                "base_path": ["/models/Qwen2.5-7B"],
                "layout": ["trl"],
                "device": ["cuda:0"],
                "seconds": [29.0],
                "analyzed_at": pa.array([time.time() * 1e6], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            },
        ),
        "layers": table("layers", layers),
        "tensors": table(
            "tensors",
            {
                "run": [RUN] * len(tensors),
                "step": [step] * len(tensors),
                "tensor": [t[0] for t in tensors],
                "layer": [t[1] for t in tensors],
                "module": [t[2] for t in tensors],
                "kind": ["linear"] * len(tensors),
                "dtype": ["bfloat16"] * len(tensors),
                "shape": [[t[3], t[4]] for t in tensors],
                "analyzed": [True] * len(tensors),
            },
        ),
        "fits": table("fits", fits),
        "esd_hist": table("esd_hist", hist),
    }
    if spectra:
        sv = [np.sort(rng.lognormal(size=min(t[3], t[4])))[::-1] for t, _ in rows]
        out["spectra"] = table("spectra", {**common, "sv": list_column(sv, pa.float64())})
    return out


def run_tables(steps: list[int], rng: np.random.Generator) -> dict[str, pa.Table]:
    grid = [(t, s) for t in tensor_rows() for s in steps if s > 0]
    n = len(grid)
    alignment = {
        "run": [RUN] * n,
        "tensor": [t[0] for t, _ in grid],
        "step": [s for _, s in grid],
        "layer": [t[1] for t, _ in grid],
        "module": [t[2] for t, _ in grid],
        "sigma1": rng.uniform(0, 5, n),
        **{c: rng.uniform(0, 1, n) for c in ALIGNMENT_MEASURES},
    }
    logged = range(1, steps[-1] + 1)
    names = ["reward", "reward_std", "loss", "kl", "entropy", "response_length", "lr", "grad_norm"]
    metrics = {
        "run": [RUN] * (len(logged) * len(names)),
        "step": np.repeat(list(logged), len(names)),
        "name": names * len(logged),
        "value": rng.uniform(0, 1, len(logged) * len(names)),
        "source": ["trainer_state.json"] * (len(logged) * len(names)),
    }
    tests = [s for s in steps if s > 0]
    metrics = {
        k: list(v) + extra
        for k, v, extra in zip(
            metrics,
            metrics.values(),
            (
                [RUN] * len(tests),
                tests,
                ["eval_accuracy"] * len(tests),
                list(rng.uniform(0.3, 0.7, len(tests))),
                ["trainer_state.json"] * len(tests),
            ),
        )
    }
    summary = {
        "run": [RUN],
        "reward_metric": ["reward"],
        "test_metric": ["eval_accuracy"],
        "spearman": [0.4],
        "reward_peak_step": [steps[-1]],
        "test_peak_step": [steps[len(steps) // 2]],
        "n_shared_steps": [len(tests)],
        "log_format": ["trl"],
        "log_path": ["trainer_state.json"],
    }
    recovery = {
        "run": [RUN] * 2,
        "step": [steps[-1]] * 2,
        "rank": [1, 4],
        "mode": ["truncated"] * 2,
        "dataset": ["math500"] * 2,
        "acc_base": [0.5] * 2,
        "acc_full": [0.7] * 2,
        "acc_rank": [0.64, 0.69],
        "recovery": [0.7, 0.95],
        "n_problems": [500] * 2,
        "eval_id_rank": ["e1", "e4"],
    }
    return {
        "alignment": table("alignment", alignment, RUN_SCHEMAS),
        "rank1_dynamics": table(
            "rank1_dynamics", {"run": [RUN] * 196, "tensor": [t[0] for t in tensor_rows()]}, RUN_SCHEMAS
        ),
        "metrics": table("metrics", metrics, RUN_SCHEMAS),
        "run_summary": table("run_summary", summary, RUN_SCHEMAS),
        "recovery": table("recovery", recovery, RUN_SCHEMAS),
    }


def write_cache(cache: Path, n_steps: int, spectra: bool) -> float:
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    steps = [0] + [10 * (i + 1) for i in range(n_steps)]
    owner = Cache(cache)
    for step in steps:
        owner.write_step(RUN, step, step_tables(step, rng, spectra))
    owner.write_run_tables(RUN, run_tables(steps, rng))
    for ident, rank in (("e1", 1), ("e4", 4)):
        samples = {
            "eval_id": [ident] * 500,
            "problem_id": [str(i) for i in range(500)],
            "sample": [0] * 500,
            "completion": ["Let us think step by step ... \\boxed{42}"] * 500,
            "extracted": ["42"] * 500,
            "correct": list(rng.uniform(size=500) < 0.6),
            "gold": ["42"] * 500,
        }
        evaluation = {
            "eval_id": [ident],
            "run": [RUN],
            "step": [steps[-1]],
            "variant": [f"rank-{rank}"],
            "rank": [rank],
            "mode": ["truncated"],
            "dataset": ["math500"],
            "n": [1],
            "temperature": [0.0],
            "accuracy": [0.6],
            "n_problems": [500],
        }
        owner.write_eval(
            ident,
            {
                "evaluations": table("evaluations", evaluation, EVAL_SCHEMAS),
                "eval_samples": table("eval_samples", samples, EVAL_SCHEMAS),
            },
        )
    return time.perf_counter() - start


def time_pages(cache: Path, repeats: int) -> list[tuple[str, float, list[float]]]:
    from streamlit.testing.v1 import AppTest

    os.environ[CACHE_ENV] = str(cache)
    results = []
    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page(page)
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        if at.exception:
            raise SystemExit(f"{page} raised: {at.exception[0].message}")
        later = []
        for _ in range(repeats):
            start = time.perf_counter()
            at.run()
            later.append(time.perf_counter() - start)
        if page in INTERACTIONS:
            kind, key, value = INTERACTIONS[page]
            widget = getattr(at, kind)(key=key) if key else getattr(at, kind)[0]
            widget.set_value(value)
            start = time.perf_counter()
            at.run()
            later.append(time.perf_counter() - start)
            if at.exception:
                raise SystemExit(f"{page} raised after a selection: {at.exception[0].message}")
        results.append((page, first, later))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", help="where to write the cache (default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=50, help="analysed steps besides the base (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per page after the first (default 3)")
    parser.add_argument("--no-spectra", action="store_true", help="skip the singular-value lists (smaller cache)")
    parser.add_argument("--keep", action="store_true", help="keep the cache afterwards")
    parser.add_argument("--reuse", action="store_true", help="time the pages on the cache already in --workdir")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rlvr-dash-"))
    cache = work / "cache"
    if not args.reuse and cache.exists():
        shutil.rmtree(cache)
    seconds = 0.0 if args.reuse else write_cache(cache, args.steps, not args.no_spectra)
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    print(
        f"cache: {args.steps} steps + base x 196 tensors (7B shapes), {size / 2**20:.0f} MiB in "
        f"{len(list(cache.rglob('*.parquet')))} Parquet files, written in {seconds:.1f} s: {cache}"
    )
    worst = 0.0
    for page, first, later in time_pages(cache, args.repeats):
        worst = max(worst, max(later))
        changed = f"   after a selection {later.pop():5.2f} s" if page in INTERACTIONS else ""
        print(
            f"{page:24s} first load {first:6.2f} s   later runs "
            + " ".join(f"{t:5.2f}" for t in later)
            + " s"
            + changed
        )
    print(f"slowest later run: {worst:.2f} s (target <= 1 s): {'met' if worst <= 1.0 else 'NOT met'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
