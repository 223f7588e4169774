"""Bench: how the tool behaves beside other work on a shared machine (issue: a shared lab server under load).

    python bench/contention.py [--workdir DIR] [--repeats 3] [--skip-demo] [--skip-pages]

(a) The quick demo build (`rlvr demo --quick --no-analyze`, 2 torch threads) timed alone, then beside one
    busy-loop process per core: with the tool's settings (`rlvr`'s entry point sets OpenMP's passive wait
    policy, `system.sharing`) and as it ran before them (the same command called past the entry point, so
    no wait policy is set: OpenMP's default spin-wait). Prints each time and the ratios to the quiet time
    (target: loaded <= 2.5x quiet).
(b) Dashboard page loads in real Chromium (Debian's, `/usr/bin/chromium`): every page of `streamlit run
    app.py` on the demo's cache, `--repeats` times each, p50 and p95 of the time until the page's script has
    finished and its charts are drawn; with the worker idle, then while an analysis runs beside it (a loop
    of `rlvr analyze --force` on the demo's run): as `rlvr serve` starts it now (10 steps nicer, passive
    wait policy) and as before (same priority, spin-wait). Prints p50/p95 and the ratios (target: p95 busy
    <= 2x idle).

Run it by hand on a quiet machine (it loads the CPU itself); it prints the machine's cores and load first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["", "claims", "layers", "spectra", "alignment", "reward", "substitution", "prediction", "metrics", "jobs"]
BEFORE = (
    "import sys; from rlvr_core.cli import build_parser; p, _ = build_parser(); a = p.parse_args(sys.argv[1:]); "
    "sys.exit(a.func(a))"
)
"""The command called past `rlvr`'s entry point: no wait policy set (how every command ran before)."""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")}


def rlvr(args: list[str], before: bool = False) -> list[str]:
    return [sys.executable, "-c", BEFORE, *args] if before else [sys.executable, "-m", "rlvr_core", *args]


def burners() -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def timed_demo(workdir: Path, name: str, loaded: bool, before: bool) -> float:
    args = ["demo", "--quick", "--no-analyze", "--out", str(workdir / name), "--cache", str(workdir / f"{name}-c")]
    load = burners() if loaded else []
    try:
        start = time.perf_counter()
        subprocess.run(rlvr(args, before), env=clean_env(), check=True, capture_output=True)
        return time.perf_counter() - start
    finally:
        stop(load)


def demo_bench(workdir: Path) -> None:
    quiet = timed_demo(workdir, "quiet", False, False)
    now = timed_demo(workdir, "loaded-now", True, False)
    old = timed_demo(workdir, "loaded-before", True, True)
    print(f"(a) quick demo build: quiet {quiet:.1f} s; beside {os.cpu_count()} busy loops: {now:.1f} s "
          f"({now / quiet:.2f}x) with the passive wait policy, {old:.1f} s ({old / quiet:.2f}x) "
          "without it")  # fmt: skip


def page_times(cache: Path, repeats: int) -> list[float]:
    """Seconds per page load in Chromium (each page `repeats` times)."""
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.browser import launch, start_app

    proc, url = start_app(cache)
    times = []
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("[data-testid='stSidebarNav']", timeout=120000)
            for _ in range(repeats):
                for name in PAGES:
                    start = time.perf_counter()
                    page.goto(f"{url}/{name}")
                    page.wait_for_selector("h1", timeout=120000)
                    page.wait_for_function(
                        "!document.querySelector(\"[data-testid='stStatusWidget']\")", timeout=120000
                    )
                    times.append(time.perf_counter() - start)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return times


def analysis_loop(demo: Path, cache: Path, nice: int, before: bool) -> subprocess.Popen:
    """A loop of `rlvr analyze --force` on the demo's run (the worker's job), at `nice`."""
    run = demo / "runs" / "demo-grpo"
    args = ["analyze", str(run), "--base", str(demo / "base"), "--cache", str(cache), "--run", "busy", "--force"]
    line = " ".join(f"'{a}'" for a in rlvr(args, before))
    return subprocess.Popen(["nice", "-n", str(nice), "bash", "-c", f"while true; do {line} >/dev/null 2>&1; done"],
                            env=clean_env(), start_new_session=True)  # fmt: skip


def pages_bench(workdir: Path, repeats: int) -> None:
    demo, cache = workdir / "demo", workdir / "demo-cache"
    build = rlvr(["demo", "--quick", "--out", str(demo), "--cache", str(cache)])
    subprocess.run(build, check=True, capture_output=True)
    results = {"idle": page_times(cache, repeats)}
    for label, nice, before in (("busy, as rlvr serve runs it now", 10, False), ("busy, as before", 0, True)):
        loop = analysis_loop(demo, workdir / f"busy-{nice}", nice, before)
        try:
            time.sleep(5)  # the analysis under way
            results[label] = page_times(cache, repeats)
        finally:
            os.killpg(loop.pid, 9)
            loop.wait()
    idle95 = quantile(results["idle"], 0.95)
    for label, times in results.items():
        p50, p95 = statistics.median(times), quantile(times, 0.95)
        print(f"(b) page loads, worker {label}: p50 {p50:.2f} s, p95 {p95:.2f} s ({p95 / idle95:.2f}x idle p95; "
              f"{len(times)} loads)")  # fmt: skip


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rlvr-contention-"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; workdir {workdir}")
    if not args.skip_demo:
        demo_bench(workdir)
    if not args.skip_pages:
        pages_bench(workdir, args.repeats)


if __name__ == "__main__":
    main()
