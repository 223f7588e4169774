"""Bench: how soon `rlvr watch` makes a new checkpoint visible through the cache.

    python bench/watch.py [--shape demo|qwen0.5b] [--settle 5] [--interval 1] [--threads N] [--workdir DIR] [--serve]

Writes a synthetic base and step checkpoint (bf16, sharded by block; `bench/spectra.py`'s writer) of the
built-in demo's shapes (3 blocks, hidden 128, MLP 512) or Qwen2.5-0.5B's (24 blocks, hidden 896, MLP
4864), starts `rlvr watch` on an empty run folder, then copies the step in as `checkpoint-1` (its
analysis includes the base's, as step 0) and, once that is in the cache, as `checkpoint-2`. For
`checkpoint-2` it prints the latency from "last byte written" to "step visible through
`Cache.queries().steps()`", the watch's own analysis time for the step, and the overhead
latency - settle - analysis. Target (issue 19): overhead <= interval + 2 s (the watch looks every
`interval` seconds, so a checkpoint waits up to one interval to be seen).

`--serve` measures the same through a registered watch, as under `rlvr serve`: `rlvr submit watch`, then
`rlvr watcher` and one `rlvr worker` (the analysis runs as a queued job: the worker's poll and the job's
own process start-up, torch included, add to the overhead); the analysis time is the job's own.
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
from rlvr_core.cache import queue as jobs

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
    parser.add_argument("--serve", action="store_true", help="a registered watch, with `rlvr watcher` + `rlvr worker`")
    args = parser.parse_args()
    base_dir, step_dir = spectra.write_pair(args.workdir, args.shape)
    run, cache = args.workdir / args.shape / "run", args.workdir / args.shape / "cache"
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    run.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    flags = ["--base", str(base_dir), "--run", "bench", "--cache", str(cache), "--device", "cpu"]
    flags += ["--interval", str(args.interval), "--settle", str(args.settle)]
    rlvr = [sys.executable, "-m", "rlvr_core"]
    if args.serve:  # what `rlvr serve` runs: a registered watch, the watcher and one worker
        subprocess.run([*rlvr, "submit", "watch", str(run), *flags], check=True, env=env, capture_output=True)
        helpers = [
            subprocess.Popen(
                [*rlvr, name, "--cache", str(cache)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
            for name in ("watcher", "worker")
        ]
    else:
        helpers = [subprocess.Popen([*rlvr, "watch", str(run), *flags], stdout=subprocess.PIPE, text=True, env=env)]
    try:
        first = copy_in(step_dir, run / "checkpoint-1")
        print(f"checkpoint-1 (with the base) visible {wait_visible(cache, 1) - first:.1f} s after written")
        done = copy_in(step_dir, run / "checkpoint-2")
        latency = wait_visible(cache, 2) - done
        while args.serve and not any(j.state == "done" and j.argv[1].startswith("2=") for j in jobs.list_jobs(cache)):
            time.sleep(0.1)  # the job prints its summary (its analysis time) after publishing
    finally:
        for helper in helpers:
            helper.terminate()
        out = helpers[0].communicate(timeout=600)[0] or ""
        for helper in helpers[1:]:
            helper.wait(timeout=600)
    analysis = analysis_seconds(cache, out, args.serve)
    overhead = latency - args.settle - analysis
    mode = "registered watch (watcher + worker, as under rlvr serve)" if args.serve else "rlvr watch"
    print(
        f"{args.shape}, {mode}: checkpoint-2 visible {latency:.1f} s after its last byte: settle {args.settle:g} s "
        f"+ analysis {analysis:.1f} s + overhead {overhead:.1f} s (interval {args.interval:g} s; target: overhead "
        f"<= interval + 2 s: {'met' if overhead <= args.interval + 2 else 'missed'})"
    )


def analysis_seconds(cache: Path, watch_output: str, serve: bool) -> float:
    """The analysis time of checkpoint-2: `rlvr watch`'s line, or the analysis job's own summary line."""
    if not serve:
        line = next(x for x in watch_output.splitlines() if "step 2: analysed in" in x)
        return float(line.split("analysed in ")[1].split(" s")[0])
    job = next(j for j in jobs.list_jobs(cache) if j.kind == "analyze" and j.argv[1].startswith("2="))
    line = next(x for x in jobs.log_tail(cache, job.id).splitlines() if "s per checkpoint" in x)
    return float(line.split(" s per checkpoint")[0].rsplit("(", 1)[1])


if __name__ == "__main__":
    main()
