"""Bench: a step read from verl's raw FSDP rank files vs from the merged safetensors of the same step.

    python bench/shards.py [--layers 2] [--ranks 8] [--workdir DIR]

Shapes: Qwen2.5-7B's decoder layer (its config.json: hidden 3584, MLP 18944, 28 query heads and 4 key-value
heads of 128: q/o 3584 x 3584, k/v 512 x 3584, gate/up 18944 x 3584, down 3584 x 18944), `--layers` of
its 28 layers (2: 466 M weights, 1.9 GB in fp32). The step is written as verl's FSDPCheckpointManager
writes it: `model_world_size_8_rank_R.pt`, each `torch.save` of a state dict of `DTensor` row blocks
(`Shard(0)` on a `("fsdp",)` mesh), made by `--ranks` gloo processes (torch's own DTensor, not verl's
code: verl itself is exercised in tests/test_frameworks.py). The base is bf16 safetensors (a Hub model);
the step = the base + a small fp32 update; "merged" = that step in bf16 safetensors, as
`verl.model_merger` writes it. Each is analysed in its own `rlvr analyze` process (W and dW, no fits, no
base step); the bench prints the wall time rlvr reports and the peak memory of the process tree (the sum
of each process's PSS, sampled every 0.1 s), and the raw/merged ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import PEAK_SINGLE_RSS_MB, run_sampled  # the same process-tree sampler as bench/moe.py

from rlvr_core.fixtures.checkpoints import write_checkpoint

HIDDEN, INTER, KV = 3584, 18944, 512


def shapes(layers: int) -> dict[str, tuple[int, int]]:
    out = {}
    for layer in range(layers):
        p = f"model.layers.{layer}"
        out |= {f"{p}.self_attn.q_proj.weight": (HIDDEN, HIDDEN), f"{p}.self_attn.k_proj.weight": (KV, HIDDEN),
                f"{p}.self_attn.v_proj.weight": (KV, HIDDEN), f"{p}.self_attn.o_proj.weight": (HIDDEN, HIDDEN),
                f"{p}.mlp.gate_proj.weight": (INTER, HIDDEN), f"{p}.mlp.up_proj.weight": (INTER, HIDDEN),
                f"{p}.mlp.down_proj.weight": (HIDDEN, INTER)}  # fmt: skip
    return out


def block(index: int, rank: int, rows: int, cols: int, step: bool) -> torch.Tensor:
    """Rank `rank`'s rows of tensor `index`: the bf16 base (as fp32), plus the update when `step`."""
    gen = torch.Generator().manual_seed(index * 1000 + rank)
    base = (torch.randn(rows, cols, generator=gen) * 0.02).to(torch.bfloat16).float()
    return base + 3e-5 * torch.randn(rows, cols, generator=gen) if step else base


def write_rank(rank: int, world: int, layers: int, actor: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard

    dist.init_process_group("gloo", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("fsdp",))
    state = {}
    for index, (name, (rows, cols)) in enumerate(shapes(layers).items()):
        local = block(index, rank, rows // world, cols, step=True)
        state[name] = DTensor.from_local(local, mesh, [Shard(0)], run_check=False, shape=(rows, cols),
                                         stride=(cols, 1))  # fmt: skip
    torch.save(state, os.path.join(actor, f"model_world_size_{world}_rank_{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


def build(folder: Path, layers: int, world: int) -> tuple[Path, Path, Path]:
    base, actor, merged = folder / "base", folder / "run" / "global_step_1" / "actor", folder / "merged"
    if (merged / "model.safetensors.index.json").is_file():
        return base, actor, merged
    named = shapes(layers)
    weights = {n: torch.cat([block(i, r, s[0] // world, s[1], False) for r in range(world)]) for i, (n, s) in
               enumerate(named.items())}  # fmt: skip
    write_checkpoint(base, weights, "bf16", layers, "qwen2")
    del weights
    actor.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    code = (
        "import sys, torch.multiprocessing as mp; sys.path.insert(0, sys.argv[1]); import shards; "
        "world = int(sys.argv[2]); "
        "mp.spawn(shards.write_rank, args=(world, int(sys.argv[3]), sys.argv[4]), nprocs=world)"
    )
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(world), str(layers), str(actor)],
                   env=env, check=True)  # fmt: skip
    (actor / "huggingface").mkdir(exist_ok=True)
    (actor / "huggingface" / "config.json").write_text((base / "config.json").read_text())
    from rlvr_core.readers.fsdp import FsdpCheckpoint

    shards = FsdpCheckpoint(actor)
    write_checkpoint(merged, {n: shards.read_tensor(n) for n in named}, "bf16", layers, "qwen2")
    return base, actor, merged


def run(step: Path, base: Path, cache: Path) -> tuple[float, float]:
    """(analysis seconds as rlvr reports them, peak tree PSS in MB) of one `rlvr analyze` process."""
    argv = [sys.executable, "-m", "rlvr_core", "analyze", "--checkpoint", f"1={step}", "--base", str(base),
            "--run", "shards", "--cache", str(cache), "--no-alignment", "--no-base", "--no-fits", "--device", "cpu",
            "--force", "--quiet"]  # fmt: skip
    out, peak = run_sampled(argv)
    return float(re.search(r"tensors in ([\d.]+) s", out)[1]), peak  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rlvr-bench-shards"))
    args = parser.parse_args()
    folder = args.workdir / f"{args.layers}x{args.ranks}"
    base, actor, merged = build(folder, args.layers, args.ranks)
    n = sum(r * c for r, c in shapes(args.layers).values())
    largest = INTER * HIDDEN * 4 / 2**20
    print(
        f"Qwen2.5-7B layer shapes x {args.layers} layers ({n / 1e6:.0f} M weights; the largest matrix "
        f"{largest:.0f} MB in fp32), step in {args.ranks} rank files; {torch.get_num_threads()} CPU threads"
    )
    results = {}
    for label, step in (("merged bf16 safetensors", merged), ("raw fp32 rank files", actor)):
        seconds, peak = run(step, base, folder / f"cache-{label.split()[0]}")
        results[label] = seconds
        print(f"{label:>24}: {seconds:6.1f} s, peak PSS of the process tree {peak:5.0f} MB, largest single "
              f"process RSS {PEAK_SINGLE_RSS_MB[0]:5.0f} MB")  # fmt: skip
    ratio = results["raw fp32 rank files"] / results["merged bf16 safetensors"]
    print(f"raw shards / merged safetensors: {ratio:.2f}x the time (target: at most 1.3x)")


if __name__ == "__main__":
    main()
