"""Bench: heavy-tail fits against WeightWatcher's `analyze()` and powerlaw's exhaustive search.

    python bench/fits.py [--shape qwen0.5b] [--exhaustive 24] [--threads N] [--workdir DIR]

Needs `pip install weightwatcher==0.7.7` (for this bench only; not a requirement of the tool).
On the synthetic step checkpoint of bench/spectra.py (same shapes, bf16), for every linear layer's W:
1. ours: read, full spectrum (spectral.decompose), `heavytail.fit_esd` (with the likelihood-ratio
   tests): seconds, and the fits' share of that time;
2. WeightWatcher 0.7.7 `analyze()` with its defaults (its own fitter; ESD = sigma(W)^2, no 1/N) on an
   nn.Module holding the same float32 weights: seconds, and alpha agreement per layer;
3. `powerlaw.Fit(evals, parameter_ranges={'alpha': [1, None]})` (the exhaustive xmin search) on the first
   `--exhaustive` spectra (W and dW): the largest alpha and xmin differences to our scan.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spectra import write_pair

from rlvr_core import heavytail, spectral
from rlvr_core.readers.checkpoint import Checkpoint


def ours(step: Checkpoint, base: Checkpoint) -> tuple[dict, float, float, list]:
    """W-only, as WeightWatcher: read, spectrum, fit. Also collects W and dW spectra (untimed)."""
    fits, svs, t_fit, t_total = {}, [], 0.0, 0.0
    for name in sorted(step.tensors):
        t0 = time.perf_counter()
        w = step.read_tensor(name)
        sv = spectral.decompose(w).sv.numpy()
        t1 = time.perf_counter()
        fits[name] = heavytail.fit_esd(sv)
        t_fit += time.perf_counter() - t1
        t_total += time.perf_counter() - t0
        if len(svs) < 64:
            svs += [sv, spectral.decompose(w.double() - base.read_tensor(name).double()).sv.numpy()]
    return fits, t_total, t_fit, svs


def weightwatcher(step: Checkpoint) -> tuple[dict, float]:
    import weightwatcher as ww

    names = sorted(step.tensors)
    model = torch.nn.Module()
    for i, name in enumerate(names):
        w = step.read_tensor(name).float()
        layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            layer.weight.copy_(w)
        model.add_module(f"m{i:04d}", layer)
    watcher = ww.WeightWatcher(model=model)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = watcher.analyze()
    seconds = time.perf_counter() - t0
    alphas = {names[int(row["name"][1:])]: float(row["alpha"]) for _, row in details.iterrows()}
    return alphas, seconds


def exhaustive(svs: list, limit: int) -> tuple[float, float, int]:
    import powerlaw

    worst_alpha = worst_xmin = 0.0
    checked = 0
    for sv in svs:
        evals = heavytail.esd(sv)
        evals = evals[evals > heavytail.EVALS_THRESH]
        if evals.size < heavytail.MIN_EVALS or checked >= limit:
            continue
        checked += 1
        best, alphas, _ = heavytail.scan_xmin(evals)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = powerlaw.Fit(evals, parameter_ranges={"alpha": [1, None]}, verbose=False)
        worst_alpha = max(worst_alpha, abs(alphas[best] - ref.alpha))
        worst_xmin = max(worst_xmin, abs(evals[best] - ref.xmin) / ref.xmin)
    return worst_alpha, worst_xmin, checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="qwen0.5b")
    parser.add_argument("--exhaustive", type=int, default=24, help="spectra to check against powerlaw.Fit")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rlvr-bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base_dir, step_dir = write_pair(args.workdir, args.shape)
    step, base = Checkpoint(step_dir), Checkpoint(base_dir)
    fits, t_ours, t_fit, svs = ours(step, base)
    print(f"ours: {len(fits)} layers (W) in {t_ours:.1f} s, fits {t_fit:.1f} s ({t_fit / t_ours:.0%})")
    alphas, t_ww = weightwatcher(step)
    diffs = np.array([abs(fits[n].alpha - a) for n, a in alphas.items() if fits[n].fit_status == "ok"])
    print(f"WeightWatcher 0.7.7 analyze(): {len(alphas)} layers in {t_ww:.1f} s; ours is {t_ww / t_ours:.2f}x faster")
    print(
        f"alpha |ours - WW| over {diffs.size} layers: max {diffs.max():.2e}, median {np.median(diffs):.2e}, "
        f"within 1e-6: {(diffs < 1e-6).sum()}"
    )
    worst_alpha, worst_xmin, n = exhaustive(svs, args.exhaustive)
    print(
        f"vs powerlaw.Fit(alpha in [1, inf)) exhaustive search on {n} spectra (W and dW): "
        f"max |d alpha| {worst_alpha:.2e}, max relative d xmin {worst_xmin:.2e}"
    )


if __name__ == "__main__":
    main()
