"""Micro-timings of the spectral engine's building blocks on one device (7B shapes, float64).

    python bench/gpu_micro.py [--device cuda]

Prints the seconds of: the Gram product, eigvalsh and eigh of a 3584 x 3584 Gram matrix, svd_lowrank
(q = 24, niter = 6) of an 18944 x 3584 matrix, and how often the checked low-rank route falls back
to eigh on a rank-1-plus-noise update (as real RL updates look).
"""

from __future__ import annotations

import argparse
import time

import torch

from rlvr_core.math import spectral


def timed(fn, device: str, reps: int = 3) -> float:
    fn()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=18944)
    parser.add_argument("--cols", type=int, default=3584)
    args = parser.parse_args()
    d = args.device
    x = torch.randn(args.rows, args.cols, device=d, dtype=torch.float64) * 1e-4
    u = torch.randn(args.rows, 1, device=d, dtype=torch.float64)
    v = torch.randn(1, args.cols, device=d, dtype=torch.float64)
    x += 0.5 * (u / u.norm()) @ (v / v.norm())
    g = x.T @ x
    print(
        f"device {d} ({torch.cuda.get_device_name() if d.startswith('cuda') else 'cpu'}), "
        f"X {args.rows}x{args.cols} float64"
    )
    print(f"gram     {timed(lambda: x.T @ x, d):.4f} s")
    print(f"eigvalsh {timed(lambda: torch.linalg.eigvalsh(g), d):.4f} s")
    print(f"eigh     {timed(lambda: torch.linalg.eigh(g), d):.4f} s")
    print(f"lowrank  {timed(lambda: torch.svd_lowrank(x, q=24, niter=6), d):.4f} s")
    print(f"decompose eigh    {timed(lambda: spectral.decompose(x, 8, 'eigh'), d):.4f} s")
    print(f"decompose lowrank {timed(lambda: spectral.decompose(x, 8, 'lowrank'), d):.4f} s")
    if d.startswith("cuda"):
        torch.backends.cuda.preferred_linalg_library("magma")
        print(f"magma eigvalsh {timed(lambda: torch.linalg.eigvalsh(g), d):.4f} s")
        print(f"magma eigh     {timed(lambda: torch.linalg.eigh(g), d):.4f} s")
        torch.backends.cuda.preferred_linalg_library("default")
    sv = spectral.singular_values(x)
    fell_back = spectral._lowrank_triplets(x, sv, 8) is None
    print(f"lowrank check fell back to eigh on rank-1 + noise: {fell_back}")


if __name__ == "__main__":
    main()
