"""Bench: `rlvr analyze` against a naive per-tensor SVD baseline, on synthetic checkpoints of real shapes.

    python bench/spectra.py [--shape qwen0.5b|qwen7b|tiny] [--device cpu|cuda] [--threads N] [--engine E]
                            [--baseline-blocks N] [--baseline-dtype float32|float64] [--workdir DIR]

Writes a synthetic base and one step checkpoint (bf16, one shard per block, with an index) whose update
is rank-1 plus dense noise, then times, each in its own process:
- `rlvr analyze --checkpoint 1=STEP --base BASE --no-base --no-fits` (the spectral engine, reading
  included), then the same with the heavy-tail fits (their share of the time is printed), and
- the naive baseline: per tensor, `torch.linalg.svdvals` of W and of dW and `torch.linalg.svd` of dW
  (all in --baseline-dtype, on the same device, with the same reader).
`--baseline-blocks N` runs the baseline on the first N blocks only and scales its time to the whole
checkpoint (said in the output), for shapes where the full baseline takes too long.
Prints seconds per checkpoint for both, their ratio, each process's peak RSS, the fits' share of the
analysis, and the largest alpha / xmin difference of our xmin scan to powerlaw's exhaustive search on
`--exhaustive` of the cached spectra (`--weightwatcher` adds bench/fits.py's WeightWatcher comparison).
`--geometry` instead times one step with and without the update's geometry (`update_geometry`; the base
step analysed first each time), best of two each, and prints the ratio (target <= 1.15x).
Targets (issue 2): qwen0.5b on the 2-core CPU box <= 60 s, >= 4x faster than the baseline, peak RSS
<= 1 GB; qwen7b on one H100 <= 30 s per checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {  # blocks, hidden, kv_dim, intermediate
    "tiny": (2, 64, 16, 128),
    "qwen0.5b": (24, 896, 128, 4864),
    "qwen7b": (28, 3584, 512, 18944),
}


def block_shapes(hidden: int, kv: int, inter: int) -> dict[str, tuple[int, int]]:
    return {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (kv, hidden),
        "self_attn.v_proj": (kv, hidden),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (inter, hidden),
        "mlp.up_proj": (inter, hidden),
        "mlp.down_proj": (hidden, inter),
    }


def write_pair(workdir: Path, shape: str) -> tuple[Path, Path]:
    """Write base/ and step/ (bf16, sharded by block); reuse them when already complete."""
    import torch
    from safetensors.torch import save_file

    n_blocks, hidden, kv, inter = SHAPES[shape]
    base_dir, step_dir = workdir / shape / "base", workdir / shape / "step"
    if (step_dir / "model.safetensors.index.json").is_file():
        return base_dir, step_dir
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=dev).manual_seed(0)
    for d in (base_dir, step_dir):
        d.mkdir(parents=True, exist_ok=True)
    maps: dict[str, str] = {}
    for i in range(n_blocks):
        file = f"model-{i + 1:05d}-of-{n_blocks:05d}.safetensors"
        base, step = {}, {}
        for module, (rows, cols) in block_shapes(hidden, kv, inter).items():
            name = f"model.layers.{i}.{module}.weight"
            w = torch.randn(rows, cols, generator=gen, device=dev) * 0.02
            u = torch.randn(rows, 1, generator=gen, device=dev)
            v = torch.randn(1, cols, generator=gen, device=dev)
            delta = 0.5 * (u / u.norm()) @ (v / v.norm()) + 1e-4 * torch.randn(rows, cols, generator=gen, device=dev)
            base[name] = w.to(torch.bfloat16).cpu()
            step[name] = (w + delta).to(torch.bfloat16).cpu()
            maps[name] = file
        save_file(base, str(base_dir / file))
        save_file(step, str(step_dir / file))
    for d in (base_dir, step_dir):
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": maps}))
        (d / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return base_dir, step_dir


def child_analyze(args: argparse.Namespace) -> dict:
    from rlvr_core.cli import main

    t0 = time.perf_counter()
    rc = main(
        [
            "analyze",
            "--checkpoint",
            f"1={args.step}",
            "--base",
            str(args.base),
            "--no-base",
            "--quiet",
            "--force",
            "--cache",
            str(args.cache),
            "--device",
            args.device,
            "--triplets",
            args.triplets,
            "--engine",
            args.engine,
        ]
        + (["--workers", str(args.workers)] if args.workers else [])
        + (["--no-fits"] if args.child == "spectra" else [])
    )
    if rc:
        raise SystemExit(rc)
    return {"seconds": time.perf_counter() - t0}


def child_geometry(args: argparse.Namespace) -> dict:
    """Step 1's seconds (as `rlvr analyze` reports them) with and without the update's geometry, base step
    included (its vectors are what the geometry is measured against), alternated twice in one process."""
    from rlvr_core.pipelines.analyze import AnalyzeConfig, analyze_run
    from rlvr_core.readers.layout import parse_explicit

    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for label in ("off", "on", "off", "on"):
        config = AnalyzeConfig(base=args.base, checkpoints=parse_explicit([f"1={args.step}"]), run="geometry",
                               cache=args.cache, device=args.device, fits=False, alignment=False, force=True,
                               geometry=label == "on", workers=args.workers or None)  # fmt: skip
        seconds[label].append(analyze_run(config).seconds_per_step[1])
    return {"off": min(seconds["off"]), "on": min(seconds["on"]), "all": seconds}


def child_baseline(args: argparse.Namespace) -> dict:
    import torch

    from rlvr_core.readers.checkpoint import Checkpoint

    dtype = getattr(torch, args.baseline_dtype)
    base, step = Checkpoint(args.base), Checkpoint(args.step)
    names = sorted(step.tensors)
    blocks = sorted({int(n.split(".")[2]) for n in names})
    chosen = [n for n in names if int(n.split(".")[2]) in blocks[: args.baseline_blocks or len(blocks)]]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    for name in chosen:
        w = step.read_tensor(name).to(args.device).to(dtype)
        b = base.read_tensor(name).to(args.device).to(dtype)
        dw = w - b
        torch.linalg.svdvals(w)
        torch.linalg.svdvals(dw)
        torch.linalg.svd(dw, full_matrices=False)
        sync()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds * len(names) / len(chosen), "measured_tensors": len(chosen), "tensors": len(names)}


def run_child(kind: str, args: argparse.Namespace, base: Path, step: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--base",
        str(base),
        "--step",
        str(step),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--cache",
        str(args.workdir / "cache"),
        "--baseline-blocks",
        str(args.baseline_blocks),
        "--baseline-dtype",
        args.baseline_dtype,
        "--triplets",
        args.triplets,
        "--workers",
        str(args.workers),
        "--engine",
        args.engine,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{kind} failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_fits(args: argparse.Namespace, step: Path) -> None:
    """Our xmin scan against powerlaw's exhaustive search on spectra the analysis just cached."""
    import fits
    import numpy as np

    from rlvr_core.cache import Cache

    rows = Cache(args.workdir / "cache").queries().singular_values(1)
    worst_alpha, worst_xmin, n = fits.exhaustive([np.array(r) for r in rows], args.exhaustive)
    print(
        f"alpha vs powerlaw.Fit(alpha in [1, inf)) exhaustive search, {n} spectra: max |d alpha| "
        f"{worst_alpha:.1e}, max relative d xmin {worst_xmin:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="qwen0.5b", choices=sorted(SHAPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-blocks", type=int, default=0, help="0: all blocks")
    parser.add_argument("--baseline-dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--triplets", default="auto", choices=["auto", "eigh", "lowrank"])
    parser.add_argument("--workers", type=int, default=0, help="rlvr analyze --workers (0: its default)")
    parser.add_argument("--engine", default="auto", help="rlvr analyze --engine: auto, threads, processes, batched")
    parser.add_argument("--skip-baseline", action="store_true", help="time rlvr analyze only")
    parser.add_argument(
        "--exhaustive",
        type=int,
        default=24,
        help="cached spectra to check against powerlaw's exhaustive xmin search (0: none)",
    )
    parser.add_argument(
        "--weightwatcher",
        action="store_true",
        help="also run bench/fits.py's WeightWatcher side-by-side (needs weightwatcher)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rlvr-bench"))
    parser.add_argument(
        "--geometry", action="store_true", help="only time a step with and without the update's geometry"
    )
    parser.add_argument("--child", choices=["analyze", "spectra", "baseline", "geometry"], help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--step", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        children = {"baseline": child_baseline, "geometry": child_geometry}
        result = children.get(args.child, child_analyze)(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    t0 = time.perf_counter()
    base, step = write_pair(args.workdir, args.shape)
    print(f"checkpoints ready in {time.perf_counter() - t0:.1f} s: {base} {step}")
    if args.geometry:
        g = run_child("geometry", args, base, step)
        print(
            f"shape={args.shape} device={args.device} threads={args.threads}: one step {g['off']:.1f} s without "
            f"the update's geometry, {g['on']:.1f} s with it: {g['on'] / g['off']:.2f}x (target <= 1.15x; "
            f"best of 2 each, all: {g['all']})"
        )
        return
    ours = run_child("spectra", args, base, step)
    full = run_child("analyze", args, base, step)
    print(
        f"shape={args.shape} device={args.device} threads={args.threads} triplets={args.triplets} "
        f"workers={args.workers or 'default'} engine={args.engine}"
    )
    print(f"rlvr analyze --no-fits: {ours['seconds']:8.1f} s per checkpoint, peak RSS {ours['peak_rss_mb']:.0f} MB")
    print(
        f"rlvr analyze (fits)   : {full['seconds']:8.1f} s per checkpoint, peak RSS {full['peak_rss_mb']:.0f} MB;"
        f" fits' share {1 - ours['seconds'] / full['seconds']:.0%}"
    )
    if args.exhaustive:
        compare_fits(args, step)
    if args.weightwatcher:
        import fits

        from rlvr_core.readers.checkpoint import Checkpoint

        our_fits, t_ours, _, _ = fits.ours(Checkpoint(step), Checkpoint(base))
        alphas, t_ww = fits.weightwatcher(Checkpoint(step))
        diffs = [abs(our_fits[n].alpha - a) for n, a in alphas.items() if our_fits[n].fit_status == "ok"]
        print(
            f"WeightWatcher analyze(): {t_ww:.1f} s for W only vs ours {t_ours:.1f} s ({t_ww / t_ours:.2f}x); "
            f"alpha max |diff| {max(diffs):.2e} over {len(diffs)} layers"
        )
    if args.skip_baseline:
        return
    naive = run_child("baseline", args, base, step)
    scaled = (
        ""
        if not args.baseline_blocks
        else (f" (measured on {naive['measured_tensors']} of {naive['tensors']} tensors, scaled)")
    )
    print(
        f"baseline ({args.baseline_dtype}): {naive['seconds']:8.1f} s per checkpoint{scaled}, "
        f"peak RSS {naive['peak_rss_mb']:.0f} MB"
    )
    print(f"speed-up (spectra vs baseline): {naive['seconds'] / ours['seconds']:8.2f}x")


if __name__ == "__main__":
    main()
