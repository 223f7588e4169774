"""Bench: how soon `rlvr watch` makes a new checkpoint visible through the cache.

    python bench/watch.py [--shape demo|qwen0.5b] [--settle 5] [--interval 1] [--threads N] [--workdir DIR]

Writes a synthetic base and step checkpoint (bf16, sharded by block; `bench/spectra.py`'s writer) of the
built-in demo's shapes (3 blocks, hidden 128, MLP 512) or Qwen2.5-0.5B's (24 blocks, hidden 896, MLP
4864), starts `rlvr watch` on an empty run folder, then copies the step in as `checkpoint-1` (its
analysis includes the base's, as step 0) and, once that is in the cache, as `checkpoint-2`. For
`checkpoint-2` it prints the latency from "last byte written" to "step visible through
`Cache.queries().steps()`", the watch's own analysis time for the step, and the overhead
latency - settle - analysis. Target (issue 19): overhead <= interval + 2 s (the watch looks every
`interval` seconds, so a checkpoint waits up to one interval to be seen).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import spectra  # bench/spectra.py: the synthetic checkpoint writer

from rlvr_core.cache import Cache

spectra.SHAPES["demo"] = (3, 128, 128, 512)


def copy_in(step_dir: Path, target: Path) -> float:
    """Copy the checkpoint as a trainer writes it (shards, then index and config); the time it is done."""
    target.mkdir()
    files = sorted(step_dir.iterdir(), key=lambda f: (not f.name.endswith(".safetensors"), f.name))
    for file in files:
        shutil.copyfile(file, target / file.name)
    return time.time()


def wait_visible(cache: Path, step: int, timeout: float = 1800) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cache.exists() and step in Cache(cache).queries().steps("bench"):
            return time.time()
        time.sleep(0.05)
    raise SystemExit(f"step {step} never reached the cache")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="demo", choices=["demo", "qwen0.5b"])
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rlvr-bench-watch"))
    args = parser.parse_args()
    base_dir, step_dir = spectra.write_pair(args.workdir, args.shape)
    run, cache = args.workdir / args.shape / "run", args.workdir / args.shape / "cache"
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    run.mkdir(parents=True)
    argv = ["watch", str(run), "--base", str(base_dir), "--run", "bench", "--cache", str(cache), "--device", "cpu"]
    argv += ["--interval", str(args.interval), "--settle", str(args.settle)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    watcher = subprocess.Popen([sys.executable, "-m", "rlvr_core", *argv], stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = copy_in(step_dir, run / "checkpoint-1")
        print(f"checkpoint-1 (with the base) visible {wait_visible(cache, 1) - first:.1f} s after written")
        done = copy_in(step_dir, run / "checkpoint-2")
        latency = wait_visible(cache, 2) - done
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=600)
    line = next(x for x in out.splitlines() if "step 2: analysed in" in x)
    analysis = float(line.split("analysed in ")[1].split(" s")[0])
    overhead = latency - args.settle - analysis
    print(
        f"{args.shape}: checkpoint-2 visible {latency:.1f} s after its last byte: settle {args.settle:g} s + "
        f"analysis {analysis:.1f} s + overhead {overhead:.1f} s (interval {args.interval:g} s; target: overhead "
        f"<= interval + 2 s: {'met' if overhead <= args.interval + 2 else 'missed'})"
    )


if __name__ == "__main__":
    main()
