"""The claims boards the docs show, generated: the tiny demo over seeds and the SmolLM2 run.

`collect(cache, boards)` rebuilds the claims board (`pipelines.claims.claims_run`) of each run named, with
its compared runs (runs from the same base), and returns them as one JSON-ready report;
`markdown(name, report)` renders it between the docs' markers `<!-- claims-tables:NAME:start -->` and
`<!-- claims-tables:NAME:end -->`. Over several runs (seeds), each claim's figure is the mean over runs of
the per-run median over tensors, with its 95% Student-t interval (`math.stats.seed_interval`), and the
verdicts are counted; a compared run is named without its seed suffix (`-s3`), so the u1 rows of each seed
line up. A test keeps the docs equal to `markdown` of `results/claims-NAME.json`.

    python -m rlvr_core.demo.claims_tables collect CACHE NAME RUN[=COMPARED,COMPARED] ... > results/claims-NAME.json
    python -m rlvr_core.demo.claims_tables update [PAGE.md ...]   # every results/claims-*.json into the docs
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..cache import Cache
from ..math.stats import seed_interval
from .seeds_tables import interval

RESULTS = Path("results")
VERDICTS = ("supported", "contradicted", "not measurable here")


def markers(name: str) -> tuple[str, str]:
    """The docs' markers around the board called `name`."""
    return f"<!-- claims-tables:{name}:start -->", f"<!-- claims-tables:{name}:end -->"


def collect(cache: Cache, boards: dict[str, list[str]]) -> dict:
    """Each run's claims board, rebuilt with its compared runs: {"runs": {run: [row, ...]}}."""
    from ..pipelines.claims import as_json, claims_run

    runs = {}
    for run, compared in boards.items():
        rows = claims_run(cache, run, compared)
        if not rows:
            raise ValueError(f"run '{run}': no analysed step in {cache.root}; run `rlvr analyze` first")
        runs[run] = as_json(rows)
    return {"runs": runs}


def markdown(name: str, report: dict) -> str:
    """The board (one run) or the boards summarised over runs (seeds), between the README markers."""
    start, end = markers(name)
    runs = report["runs"]
    body = _one(next(iter(runs.values()))) if len(runs) == 1 else _over_runs(runs)
    return "\n".join([start, *body, end]) + "\n"


def _one(rows: list[dict]) -> list[str]:
    step = rows[0]["step"]
    lines = [
        f"Run '{rows[0]['run']}' at step {step}: each measure's median over tensors [95% interval] (n tensors), "
        "beside what chance gives [band].",
        "",
        "| claim | measure | this run | chance | verdict | why |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        found = "" if r["value"] is None else f"{_num(r['value'])} [{_num(r['low'])}, {_num(r['high'])}] ({r['n']})"
        cells = [_claim(r), _cell(r["measure"]), found, _chance(r), r["verdict"], _cell(r["reason"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _over_runs(runs: dict[str, list[dict]]) -> list[str]:
    names = list(runs)
    lines = [
        f"{len(names)} runs ({', '.join(names)}), each at its last analysed step: the mean over runs of each "
        "run's median over tensors [95% interval over runs], the chance level (mean over runs), and how many "
        "runs each verdict got.",
        "",
        "| claim | measure | over runs | chance | verdicts |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    order: list[str] = []
    by_claim: dict[str, list[dict]] = {}
    for rows in runs.values():
        for r in rows:
            key = re.sub(r"-s\d+$", "", r["claim_id"])
            order += [] if key in by_claim else [key]
            by_claim.setdefault(key, []).append({**r, "claim_id": key, "claim": re.sub(r"-s\d+'", "'", r["claim"])})
    for key in order:
        rows = by_claim[key]
        values = seed_interval([r["value"] for r in rows])
        chance = [r["chance"] for r in rows if r["chance"] is not None]
        counts = Counter(r["verdict"] for r in rows)
        told = ", ".join(f"{v} {counts[v]}/{len(rows)}" for v in VERDICTS if counts[v])
        mean_chance = _num(sum(chance) / len(chance)) if chance else ""
        cells = [_claim(rows[0]), _cell(rows[0]["measure"]), interval(values), mean_chance, told]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _claim(r: dict) -> str:
    return f"**{r['claim_id']}** {_cell(r['claim'])} ({r['citation']})"


def _cell(text: str) -> str:
    """Text in a Markdown table cell: its pipes escaped."""
    return (text or "").replace("|", "\\|")


def _chance(r: dict) -> str:
    if r["chance"] is None:
        return ""
    return f"{_num(r['chance'])} [{_num(r['chance_low'])}, {_num(r['chance_high'])}]"


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def embedded(name: str, text: str) -> str | None:
    """The generated board `name` in a text (a docs page), markers included; None without markers."""
    start, end = markers(name)
    a, b = text.find(start), text.find(end)
    return None if a < 0 or b < a else text[a : b + len(end)] + "\n"


PAGES = (Path("docs/questions/claims-board.md"), Path("docs/explanations/real-model.md"))
"""The docs pages that show boards (relative to the checkout)."""


def update(pages: Sequence[Path] = PAGES, results: Path = RESULTS) -> list[str]:
    """Replace every generated board in `pages` with `markdown` of its `results/claims-NAME.json`."""
    texts, names = {page: page.read_text() for page in pages}, []
    for path in sorted(results.glob("claims-*.json")):
        name = path.stem.removeprefix("claims-")
        olds = {page: old for page, text in texts.items() if (old := embedded(name, text)) is not None}
        if not olds:
            start, end = markers(name)
            raise ValueError(f"{', '.join(map(str, pages))}: no {start} ... {end} markers; add them where it belongs")
        board = markdown(name, json.loads(path.read_text()))  # read and rendered once, however many pages show it
        for page, old in olds.items():
            texts[page] = texts[page].replace(old, board)
        names.append(name)
    for page, text in texts.items():
        page.write_text(text)
    return names


def _main(argv: list[str]) -> None:
    if argv[:1] == ["collect"] and len(argv) >= 4:
        boards = {}
        for spec in argv[3:]:
            run, _, compared = spec.partition("=")
            boards[run] = [c for c in compared.split(",") if c]
        print(json.dumps(collect(Cache(Path(argv[1])), boards), indent=1))
    elif argv[:1] == ["update"]:
        print("updated:", ", ".join(update([Path(a) for a in argv[1:]] or PAGES)))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    _main(sys.argv[1:])
