"""Bench: `rlvr analyze` on a mixture-of-experts checkpoint shaped like Qwen3-30B-A3B, scaled to this machine.

    python bench/moe.py [--layers 2] [--experts 32] [--engines threads,processes] [--workdir DIR]

Qwen3-30B-A3B (its config.json): hidden 2048, 48 layers of 128 experts each with gate/up 768 x 2048 and
down 2048 x 768, router 128 x 2048, attention q 4096 x 2048, k/v 512 x 2048, o 2048 x 4096. Scaled here:
the same per-expert shapes and attention, `--layers` layers of `--experts` experts (default 2 x 32 = 192
expert matrices, 1.2 GB for base + step in bf16 instead of 2 x 61 GB). The step is the base plus a
small update (rank-1 plus noise, ~1% of the weights: enough to survive bf16 rounding).

Each engine analyses the step's expert matrices (`--modules 'experts\\.'`, W and dW each, no base step,
fits on) in its own `rlvr analyze` process, and once more without fits; the bench prints seconds per
expert matrix, the ratio against the `threads` engine (the dense path's loop) measured in the same run,
the peak memory of the whole process tree (the sum of each process's PSS, sampled every 0.1 s, so shared
library pages count once), and the fits' share of the wall time ((with fits - without) / with).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import run_sampled

from rlvr_core.fixtures.checkpoints import write_checkpoint

HIDDEN, MOE_INTER, Q_OUT, KV_OUT, EXPERTS_FULL, LAYERS_FULL = 2048, 768, 4096, 512, 128, 48


def build(folder: Path, layers: int, experts: int) -> tuple[Path, Path]:
    """Write base and step (bf16, one shard per layer) unless already there."""
    base, step = folder / "base", folder / "step"
    if (step / "model.safetensors.index.json").is_file():
        return base, step
    gen = torch.Generator().manual_seed(0)
    shapes: dict[str, tuple[int, int]] = {}
    for layer in range(layers):
        p = f"model.layers.{layer}"
        shapes |= {f"{p}.self_attn.q_proj.weight": (Q_OUT, HIDDEN), f"{p}.self_attn.k_proj.weight": (KV_OUT, HIDDEN),
                   f"{p}.self_attn.v_proj.weight": (KV_OUT, HIDDEN), f"{p}.self_attn.o_proj.weight": (HIDDEN, Q_OUT),
                   f"{p}.mlp.gate.weight": (experts, HIDDEN)}  # fmt: skip
        for e in range(experts):
            shapes |= {f"{p}.mlp.experts.{e}.gate_proj.weight": (MOE_INTER, HIDDEN),
                       f"{p}.mlp.experts.{e}.up_proj.weight": (MOE_INTER, HIDDEN),
                       f"{p}.mlp.experts.{e}.down_proj.weight": (HIDDEN, MOE_INTER)}  # fmt: skip
    weights = {n: torch.randn(s, generator=gen) * 0.02 for n, s in shapes.items()}
    write_checkpoint(base, weights, "bf16", layers, "qwen3_moe")
    for w in weights.values():  # ~1% of the weights: above bf16's rounding step, so dW is not mostly zeros
        u, v = torch.randn(w.shape[0], generator=gen), torch.randn(w.shape[1], generator=gen)
        w += 2e-4 * torch.outer(u, v) + 2e-4 * torch.randn(w.shape, generator=gen)
    write_checkpoint(step, weights, "bf16", layers, "qwen3_moe")
    return base, step


def run(engine: str, base: Path, step: Path, cache: Path, fits: bool) -> tuple[float, float]:
    """(analysis seconds as rlvr reports them, peak tree PSS in MB) of one `rlvr analyze` process."""
    argv = [sys.executable, "-m", "rlvr_core", "analyze", "--pair", str(step), "--base", str(base), "--run", "moe",
            "--cache", str(cache), "--engine", engine, "--no-alignment", "--no-base", "--modules", r"experts\.",
            "--device", "cpu", "--force", "--quiet"] + ([] if fits else ["--no-fits"])  # fmt: skip
    out, peak = run_sampled(argv)
    return float(re.search(r"tensors in ([\d.]+) s", out)[1]), peak  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--engines", default="threads,processes")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rlvr-bench-moe"))
    args = parser.parse_args()
    folder = args.workdir / f"{args.layers}x{args.experts}"
    base, step = build(folder, args.layers, args.experts)
    matrices = 3 * args.layers * args.experts
    print(f"Qwen3-30B-A3B expert shapes, {args.layers} layers x {args.experts} experts = {matrices} expert matrices "
          f"(the full model: {3 * LAYERS_FULL * EXPERTS_FULL}); {torch.get_num_threads()} CPU threads")  # fmt: skip
    results = {}
    for engine in args.engines.split(","):
        seconds, peak = run(engine, base, step, folder / f"cache-{engine}", fits=True)
        bare, _ = run(engine, base, step, folder / f"cache-{engine}", fits=False)
        results[engine] = seconds
        share = max(seconds - bare, 0.0) / seconds
        print(f"{engine:>9}: {seconds:6.1f} s, {seconds / matrices * 1e3:6.1f} ms per expert matrix (W and dW, "
              f"fits), peak PSS of the process tree {peak:5.0f} MB; without fits {bare:.1f} s: fits' share "
              f"{share:.0%}")  # fmt: skip
    if "threads" in results:
        for engine, seconds in results.items():
            if engine != "threads":
                print(f"{engine} vs threads (the dense path's loop): {results['threads'] / seconds:.2f}x faster")


if __name__ == "__main__":
    main()
