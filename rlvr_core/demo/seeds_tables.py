"""The multi-seed report (`demo.seeds`) as Markdown tables: what `rlvr demo --seeds` writes to
`<out>/seeds_report.md` and what the docs' "The demo over seeds" (docs/explanations/demo.md) shows (a test
keeps the page equal to `markdown(results/demo-seeds.json)`;
`python -m rlvr_core.demo.seeds_tables [REPORT [PAGE]]` rewrites it).

Every figure is "mean [low, high]": the mean over seeds and its 95% Student-t interval
(`math.stats.seed_interval`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

START, END = "<!-- seeds-tables:start -->", "<!-- seeds-tables:end -->"
"""The markers around the generated tables in the docs page."""


def interval(stats: dict, digits: int = 3) -> str:
    """`mean [low, high]`; `mean (n=1)` for one value, `n/a` for none (NaN is null once in JSON)."""
    if not stats or stats.get("n", 0) == 0:
        return "n/a"
    mean = f"{stats['mean']:.{digits}f}"
    if stats["n"] < 2 or stats["low"] is None or not math.isfinite(stats["low"]):
        return f"{mean} (n={stats['n']})"
    return f"{mean} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def markdown(report: dict) -> str:
    """The tables, between the docs page's markers."""
    summary = report["summary"]
    n = summary["n_seeds"]
    lines = [
        START,
        f"{n} seeds ({', '.join(map(str, report['per_seed']))}); base test accuracy "
        f"{interval(summary['base_accuracy'])}; heavy-tailed share at the last step: W "
        f"{interval(summary['heavy_share_W'], 2)}, ΔW {interval(summary['heavy_share_dW'], 2)}.",
        "",
        "| step | test acc. | greedy acc. on the pool | reward (mean of last 10 steps) | rank-1 substitution: "
        "test acc. | rank-1 recovery (seeds with a real gain) | u1 alignment with the last step |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step, row in summary["per_step"].items():
        cells = [
            step,
            interval(row["test_accuracy"]),
            interval(row["pool_accuracy"]),
            interval(row["reward"]),
            interval(row["rank1_accuracy"]),
            f"{interval(row['rank1_recovery'], 2)} ({row['seeds_with_real_gain']} of {n})",
            interval(row["alignment"], 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| period k | periodic run: test acc. | its reward | share of the reward gain kept "
        "| share of the test gain kept | test share − reward share | verdict |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for k, row in summary["decoupling"].items():
        cells = [
            k,
            interval(row["periodic_test_accuracy"]),
            interval(row["periodic_reward"]),
            interval(row["reward_share"], 2),
            interval(row["test_share"], 2),
            interval(row["test_minus_reward_share"], 2),
            row["verdict"].split(":")[0],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def embedded(text: str) -> str | None:
    """The generated part of a text (the docs page), markers included; None without markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(END)] + "\n"


def update(report_path: Path, text_path: Path) -> None:
    """Replace the generated part of `text_path` (the docs page) with the tables of a seeds report."""
    text, report = text_path.read_text(), json.loads(report_path.read_text())
    old = embedded(text)
    if old is None:
        raise ValueError(f"{text_path}: no {START} ... {END} markers; add them where the tables belong")
    text_path.write_text(text.replace(old, markdown(report)))


if __name__ == "__main__":  # python -m rlvr_core.demo.seeds_tables [results/demo-seeds.json [PAGE.md]]
    arguments = sys.argv[1:] + ["results/demo-seeds.json", "docs/explanations/demo.md"][len(sys.argv[1:]) :]
    update(Path(arguments[0]), Path(arguments[1]))
