"""Checking what a form asks for against the cache before anything is queued, and saying what it will cost.

`check_compare` reads the Substitution form: steps that exist among the run's analysed checkpoints, ranks
that the cached triplets cover (else a note that those weights will be decomposed), evaluation sets that
exist (and under the data roots), and the work it asks for (problems x samples x new tokens, over the
evaluations it runs). No queue, no math: the page submits what this returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rlvr_core.errors import RlvrError
from rlvr_core.readers.datasets import available, load_dataset

from . import access


@dataclass
class CompareCheck:
    """What the form asked for, as the job will get it, or what is wrong with it."""

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    """Names, or files resolved under the data roots."""
    problems: int = 0
    evaluations: int = 0
    generated_tokens: int = 0


def _numbers(text: str, what: str, check: CompareCheck) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        check.errors.append(f"{what}: whole numbers separated by commas, not {text!r}")
        return []
    return sorted({int(p) for p in parts})


def check_compare(
    steps_text: str,
    ranks_text: str,
    dataset_text: str,
    limit: int,
    samples: int,
    max_new: int,
    run_steps: list[int],
    settings: list[tuple[int, str]],
) -> CompareCheck:
    """The Substitution form's fields checked against the run (`run_steps`: its analysed steps but the
    base; `settings`: each step's analysis settings)."""
    check = CompareCheck()
    check.steps = _numbers(steps_text, "Steps", check) if steps_text.strip() else list(run_steps)
    missing = [s for s in check.steps if s not in run_steps]
    if missing:
        check.errors.append(f"Steps: {missing} are not analysed steps of this run (they are {run_steps})")
    check.ranks = _numbers(ranks_text, "Ranks", check)
    if not ranks_text.strip() or 0 in check.ranks:
        check.errors.append("Ranks: give at least one rank of 1 or more, e.g. 1,4")
    topk = min((json.loads(text).get("topk", 0) for step, text in settings if step in check.steps), default=0)
    above = [r for r in check.ranks if r > topk]
    if above:
        check.notes.append(
            f"ranks {above} exceed the {topk} triplets the analysis cached: those weights will be "
            "decomposed again (slower, same result)"
        )
    names = [d.strip() for d in dataset_text.split(",") if d.strip()]
    if not names:
        check.errors.append("Dataset(s): name at least one evaluation set, e.g. arithmetic")
    sizes = []
    for name in names:
        resolved = _dataset(name, check)
        if resolved is not None:
            check.datasets.append(resolved[0])
            sizes.append(resolved[1] if not limit else min(limit, resolved[1]))
    check.problems = sum(sizes)
    check.evaluations = 1 + len(check.steps) * (1 + len(check.ranks))
    check.generated_tokens = check.evaluations * check.problems * samples * max_new
    return check


def _dataset(name: str, check: CompareCheck) -> tuple[str, int] | None:
    """(what the job gets: a name, or the file's resolved path, its number of problems), or None after
    noting why not."""
    is_file = name.endswith(".jsonl") or "/" in name
    if is_file:
        path = access.allowed(name, "Dataset", "file")
        if path is None:
            check.errors.append(f"Dataset {name!r}: see the error above")
            return None
        name = str(path)
    elif name not in available():
        check.errors.append(f"Dataset {name!r}: no such set; available: {', '.join(available())}")
        return None
    try:
        return name, len(load_dataset(name).problems)
    except RlvrError as error:
        check.errors.append(f"Dataset {name!r}: {error}")
        return None
