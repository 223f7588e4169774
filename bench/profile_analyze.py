"""Bench: where `rlvr analyze` spends its time on one dense checkpoint, sampled by py-spy across every process
(the main one, the matrix workers of the `processes` engine and the fit process).

    pip install py-spy
    python bench/profile_analyze.py [--workdir /tmp/rlvr-bench] [--shape qwen0.5b] [--threads 2] [--rate 40]

Writes (or reuses) bench/spectra.py's synthetic base and step checkpoint, runs its `analyze` child (with the
heavy-tail fits) under `py-spy record --subprocesses`, and prints the share of CPU samples per stage, judged
by the innermost frame of rlvr_core each sample is in: read (safetensors, bf16 to float), blocks (a block of
W and of dW in float64), Gram (BLAS dsyrk), eigen (LAPACK tridiagonal reduction and eigenvalues), finite
checks, geometry, fits, writing, start-up (imports), waiting; and the 12 busiest lines.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spectra import write_pair  # bench/spectra.py: the same checkpoints

STAGES = (  # (stage, pattern on the innermost rlvr_core frame, or on the whole stack)
    ("fits", r"math/heavytail\.py|math/chance\.py|powerlaw"),
    ("geometry", r"math/geometry\.py"),
    ("Gram (dsyrk)", r"_syrk|_Blocks\.gram|_accumulate"),
    ("eigen (LAPACK)", r"_lapack_eigen|eigh|eigvalsh"),
    ("blocks (float64 W and dW)", r"_Blocks\.pairs|_Blocks\.times"),
    ("finite checks", r"_all_finite|check_finite"),
    ("read (safetensors)", r"read_tensor|read_matrix|safetensors"),
    ("write (Parquet)", r"parquet|write_table|publishing"),
)


def stage_of(frames: list[str]) -> str:
    ours = [f for f in frames if "rlvr_core/" in f]
    inner = ours[-1] if ours else ""
    for name, pattern in STAGES:
        if re.search(pattern, inner):
            return name
    whole = ";".join(frames)
    if re.search(r"_find_and_load|exec_module|_compile_bytecode", whole):
        return "start-up (imports)"
    if re.search(r"threading\.py|queue\.py|concurrent/futures|selectors|socket\.accept|connection\.py", whole):
        return "waiting"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rlvr-bench"))
    parser.add_argument("--shape", default="qwen0.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=int, default=40, help="samples per second per process")
    args = parser.parse_args()
    base, step = write_pair(args.workdir, args.shape)
    raw = Path(tempfile.mkdtemp()) / "profile.txt"
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cache = Path(tempfile.mkdtemp()) / "cache"
    child = [sys.executable, str(Path(__file__).with_name("spectra.py")), "--child", "analyze", "--base", str(base),
             "--step", str(step), "--cache", str(cache), "--threads", str(args.threads)]  # fmt: skip
    record = ["py-spy", "record", "-r", str(args.rate), "--subprocesses", "-f", "raw", "-o", str(raw), "--", *child]
    out = subprocess.run(record, env=env, capture_output=True, text=True, check=True)
    timing = next((line for line in (out.stdout + out.stderr).splitlines() if '"seconds"' in line), "?")
    print(f"analyze under py-spy: {timing} ({args.threads} threads; sampling slows it a little)")
    by_stage: collections.Counter[str] = collections.Counter()
    by_line: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        by_stage[stage_of(frames)] += int(count)
        by_line[frames[-1]] += int(count)
    total = sum(by_stage.values())
    print(f"{total} samples")
    for name, n in by_stage.most_common():
        print(f"  {name:28s} {100 * n / total:5.1f}%")
    print("busiest lines:")
    for frame, n in by_line.most_common(12):
        print(f"  {100 * n / total:5.1f}%  {frame[:110]}")


if __name__ == "__main__":
    main()
