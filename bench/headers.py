"""Bench: reading every tensor of a safetensors file that holds many tensors (an MoE shard).

    python bench/headers.py [--tensors 10000] [--shape 64x64] [--baseline-sample 500] [--workdir DIR]

Writes one file of `--tensors` small fp32 tensors, then reads them all with `Checkpoint.read_tensor`
(the header parsed once, when the checkpoint is opened; each read seeks to its offsets) and, on a sample
of `--baseline-sample` tensors, with the old path `Checkpoint.read_tensor_safe_open` (`safe_open` per
read, which parses the whole header again each time). Prints ms per tensor for both and the ratio; the
baseline's full-file time is extrapolated from its sample (it is linear in the reads: each costs the
same header parse). Issue 21 measured the old path at 16 ms per read with 10,000 tensors per file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlvr_core.readers.checkpoint import Checkpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tensors", type=int, default=10000)
    parser.add_argument("--shape", default="64x64")
    parser.add_argument("--baseline-sample", type=int, default=500)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rlvr-bench-headers"))
    args = parser.parse_args()
    rows, cols = (int(v) for v in args.shape.split("x"))
    folder = args.workdir / f"{args.tensors}x{args.shape}"
    if not (folder / "model.safetensors").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        gen = torch.Generator().manual_seed(0)
        names = [f"model.layers.{i // 128}.mlp.experts.{i % 128}.down_proj.weight" for i in range(args.tensors)]
        save_file({n: torch.randn(rows, cols, generator=gen) for n in names}, str(folder / "model.safetensors"))
    t0 = time.perf_counter()
    checkpoint = Checkpoint(folder)
    opened = time.perf_counter() - t0
    names = sorted(checkpoint.tensors)
    t0 = time.perf_counter()
    for name in names:
        checkpoint.read_tensor(name)
    new = (time.perf_counter() - t0) / len(names)
    sample = names[:: max(1, len(names) // args.baseline_sample)][: args.baseline_sample]
    t0 = time.perf_counter()
    for name in sample:
        checkpoint.read_tensor_safe_open(name)
    old = (time.perf_counter() - t0) / len(sample)
    size = (folder / "model.safetensors").stat().st_size / 1e6
    print(
        f"{len(names)} tensors of {rows}x{cols} fp32 in one file ({size:.0f} MB); "
        f"header parsed once in {opened * 1e3:.0f} ms; read_tensor {new * 1e3:.3f} ms per tensor "
        f"({new * len(names):.1f} s for the file); safe_open per read {old * 1e3:.2f} ms per tensor "
        f"(~{old * len(names):.0f} s for the file, from {len(sample)} reads): {old / new:.0f}x faster"
    )


if __name__ == "__main__":
    main()
