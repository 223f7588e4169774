"""Evaluation sets: JSONL files with their fields mapped, the shared benchmarks by name, and the demo's
arithmetic test set built in.

A row's question is `problem` or `question`; its gold answer `answer` (numbers are written back as text:
AMC's 27.0 is "27"); a row with `choices` is multiple choice (gold = a letter); a row's `instruction`, when
present, is said after the question instead of the default instruction of its kind (`generation`).
Names are looked up as `<data dir>/<name>.jsonl`, the data dir being `--data-dir`, else `$RLVR_DATA`.
`arithmetic` is the demo's held-out test set (seed 0), graded by exact match. Plain Python: no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..math import arithmetic
from ..system.dataroots import guard
from ..system.files import read_regular

DATA_ENV = "RLVR_DATA"
KINDS = ("math", "choice", "exact")


@dataclass(frozen=True)
class EvalProblem:
    id: str
    question: str
    answer: str
    choices: tuple[str, ...] | None = None
    instruction: str | None = None
    """The row's own instruction after the question (replaces the set kind's default instruction)."""


@dataclass(frozen=True)
class EvalSet:
    name: str
    kind: str
    """`math` (boxed answer, math-verify), `choice` (a letter) or `exact` (the demo task)."""
    problems: list[EvalProblem]

    def digest(self) -> str:
        """A short hash of the content (so a changed file is a different evaluation)."""
        h = hashlib.sha256(self.kind.encode())
        for p in self.problems:
            fields = [p.id, p.question, p.answer, p.choices] + ([p.instruction] if p.instruction else [])
            h.update(json.dumps(fields).encode())
        return h.hexdigest()[:16]


def load_dataset(name_or_path: str, data_dir: str | Path | None = None, limit: int | None = None) -> EvalSet:
    """The set named or pointed at, its first `limit` problems when given."""
    if name_or_path == arithmetic.NAME:
        test = arithmetic.make_splits(0).test
        problems = [EvalProblem(p.id, p.prompt, p.answer) for p in test]
        return EvalSet(arithmetic.NAME, "exact", problems[:limit] if limit else problems)
    path = Path(name_or_path)
    if path.suffix != ".jsonl" or not path.is_file():
        path = _named(name_or_path, data_dir)
    rows = _read_jsonl(guard(path))
    problems = [_problem(row, i, path) for i, row in enumerate(rows)]
    kinds = {"choice" if p.choices else "math" for p in problems}
    if len(kinds) > 1:
        raise UsageError(str(path), "all rows multiple choice or none", "a mix", "split the file in two")
    return EvalSet(path.stem, kinds.pop(), problems[:limit] if limit else problems)


def available(data_dir: str | Path | None = None) -> list[str]:
    folder = _data_dir(data_dir)
    return [arithmetic.NAME] + (sorted(p.stem for p in folder.glob("*.jsonl")) if folder else [])


def _data_dir(data_dir: str | Path | None) -> Path | None:
    value = data_dir or os.environ.get(DATA_ENV)
    return Path(value) if value else None


def _named(name: str, data_dir: str | Path | None) -> Path:
    folder = _data_dir(data_dir)
    if folder is None:
        raise UsageError(
            f"dataset '{name}'",
            f"a .jsonl file, '{arithmetic.NAME}', or a name in a data folder",
            "no --data-dir and no $RLVR_DATA",
            "pass --data-dir DIR (a folder of NAME.jsonl files, one problem per line: see "
            "docs/questions/substitution.md, 'Rank-k substitution and evaluation'), set $RLVR_DATA, or pass the "
            ".jsonl file itself",
        )
    path = folder / f"{name}.jsonl"
    if not path.is_file():
        raise UsageError(
            f"dataset '{name}'",
            f"{path}",
            f"no such file; available: {', '.join(available(folder))}",
            "pass one of the available names or a .jsonl path",
        )
    return path


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        text = read_regular(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            str(path),
            "a UTF-8 text file",
            f"a byte that is not UTF-8 at offset {exc.start}",
            "convert the file to UTF-8",
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise UsageError(
                f"{path} line {number}",
                "one JSON object per line",
                f"invalid JSON ({reason})",
                "repair or remove that line",
            ) from None
        if not isinstance(row, dict):
            raise UsageError(f"{path} line {number}", "a JSON object", type(row).__name__, "check the file")
        rows.append(row)
    if not rows:
        raise UsageError(str(path), "at least one problem", "an empty file", "point at a benchmark file")
    return rows


def _problem(row: dict, index: int, path: Path) -> EvalProblem:
    question = row.get("problem") or row.get("question")
    if not question or "answer" not in row:
        raise UsageError(
            f"{path} row {index + 1}",
            "fields `problem` or `question`, and `answer`",
            f"fields {sorted(row)}",
            "map the file's fields to these names",
        )
    answer = row["answer"]
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    choices = row.get("choices")
    ident = row.get("id", row.get("unique_id", index))
    instruction = row.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise UsageError(f"{path} row {index + 1}", "`instruction` as text", type(instruction).__name__, "quote it")
    return EvalProblem(
        str(ident), str(question), str(answer).strip(), tuple(map(str, choices)) if choices else None, instruction
    )
