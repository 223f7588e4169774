"""Training logs: read verl, TRL, OpenRLHF, TensorBoard and generic CSV/JSONL logs into (step, name, value).

Formats (detected from the file name and content):
- verl's file logger: JSONL, one `{"step": N, "data": {"critic/score/mean": ..., ...}}` per line; verl's
  console logger's lines (`step:N - key:value - ...`, saved stdout: `.log`, `.txt`, `.out`; `console_log`).
- TRL / transformers: `trainer_state.json`, whose `log_history` is a list of `{"step": N, "reward": ...}`.
- TensorBoard event files (`events.out.tfevents.*`), read with the `tensorboard` package (no TensorFlow).
  Given a folder, every event file under it is read and merged by step: a resumed run writes a new
  `runs/<date>_<host>/` folder (TRL, transformers' Trainer), several hosts write one each; where a
  (step, metric) was logged twice, the value with the later wall time wins.
- Generic CSV (a W&B "Export CSV": a `Step` column, metric columns named `<run> - <metric>`, whose
  `__MIN`/`__MAX` companions are dropped) and generic JSONL (flat objects with a step key).

Default metrics (overridable): see `log_metrics`, which lists the names each framework writes. A malformed
log raises `TrainingLogError` naming the file and line; nothing is stored.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import RlvrError
from ..system.dataroots import guard
from ..system.files import is_regular, read_regular
from .console_log import is_console_log, parse_console
from .log_metrics import REWARD_CANDIDATES, TEST_CANDIDATES, first_match, likely_names, summarize_series, test_note
from .wandb_offline import is_wandb_file, read_wandb

__all__ = ["TrainingLog", "TrainingLogError", "pick_metrics", "read_log", "summarize", "test_note"]

STEP_KEYS = (
    "step", "Step", "global_step", "train/global_step", "eval/global_step", "trainer/global_step", "_step",
)  # fmt: skip
"""Step keys, the framework's own first: W&B's `_step` counts `wandb.log` calls, not training steps (OpenRLHF
logs without `step=`, so its rows carry `train/global_step` or `eval/global_step`), so it is the last resort."""
EVENTS = "events.out.tfevents.*"


class TrainingLogError(RlvrError):
    """A training log that cannot be read: malformed, empty, or without the asked-for metric."""


@dataclass(frozen=True)
class TrainingLog:
    """One parsed log: `records` are (step, metric name, value) for every numeric value."""

    path: Path
    format: str
    records: list[tuple[int, str, float]]
    files: tuple[Path, ...] = ()
    """Every file read (several TensorBoard event files are merged); `(path,)` when empty."""

    @property
    def sources(self) -> tuple[Path, ...]:
        return self.files or (self.path,)

    def names(self) -> list[str]:
        return sorted({name for _, name, _ in self.records})

    def series(self, name: str) -> dict[int, float]:
        """step -> value of one metric (the last value logged at a step wins)."""
        return {step: value for step, metric, value in self.records if metric == name}


def read_log(path: str | Path) -> TrainingLog:
    """Detect the format of `path` (a log file, or a folder holding one) and parse it."""
    file = guard(find_log_file(Path(path)))
    name = file.name
    if name.startswith("events.out.tfevents"):
        given = Path(path)
        files = [guard(f) for f in sorted(given.rglob(EVENTS)) if is_regular(f)] if given.is_dir() else [file]
        return TrainingLog(given if given.is_dir() else file, "tensorboard", _read_tensorboard(files), tuple(files))
    if name.endswith(".json"):
        return TrainingLog(file, "trl", _read_trainer_state(file))
    if name.endswith(".csv"):
        return TrainingLog(file, "csv", _read_csv(file))
    if is_wandb_file(file):  # a W&B offline run's transaction log
        rows = read_wandb(read_regular(file, TrainingLogError), file, STEP_KEYS, TrainingLogError)
        records = [r for n, obj in enumerate(rows, 1) for r in _row_records(obj, file, n)]
        return TrainingLog(file, "wandb-offline", _nonempty(records, file, rows))
    if name.endswith((".jsonl", ".json.lines", ".log", ".txt", ".out")):
        text = read_regular(file, TrainingLogError).decode("utf-8", errors="replace")
        if not text.lstrip().startswith("{") and is_console_log(text):  # verl's console logger, as text
            return TrainingLog(file, "verl-console", parse_console(text))
        records, fmt = _read_jsonl(file)
        return TrainingLog(file, fmt, records)
    raise _error(
        file,
        "a .jsonl, trainer_state.json, .csv, events.out.tfevents.* or verl console (.log, .txt, .out) file",
        f"'{name}'",
        "pass the log file itself, or the folder that holds it",
    )


def find_log_file(path: Path) -> Path:
    if is_regular(path):
        return path
    if not path.is_dir():
        kind = "something that is not a regular file" if path.exists() else "no such file or folder"
        raise _error(path, "a log file or a folder holding one", kind, "check the path")
    for pattern in (
        "trainer_state.json",
        "*.jsonl",
        "events.out.tfevents.*",
        "*.csv",
        "checkpoint-*/trainer_state.json",
        "**/events.out.tfevents.*",
        "**/run-*.wandb",
    ):
        found = sorted((p for p in path.glob(pattern) if is_regular(p)), key=_newest_checkpoint_first)
        if found:
            return found[0]
    raise _error(
        path,
        "a trainer_state.json, *.jsonl, *.csv or events.out.tfevents.* inside",
        "none",
        "pass the log file explicitly. verl writes its file logger to $VERL_FILE_LOGGER_PATH (default "
        "./<project>/<experiment>.jsonl) and TensorBoard to tensorboard_log/<project>/<experiment> "
        "($TENSORBOARD_DIR); its console lines are in the job's stdout. OpenRLHF writes TensorBoard to "
        "<--logger.tensorboard_dir>/<run_name>; from W&B, export the run's history (or pass its offline "
        "wandb/run-*/ folder)",
    )


def pick_metrics(log: TrainingLog, reward: str | None, test: str | None) -> tuple[str, str | None]:
    """(reward metric, test metric or None): the given names (which must exist) or the defaults of
    `log_metrics`. Without a test metric, `test_note(log.names())` says why."""
    names = log.names()
    for given, what in ((reward, "--reward"), (test, "--test")):
        if given is not None and given not in names:
            raise _error(
                log.path,
                f"a metric named '{given}' ({what})",
                f"metrics {likely_names(names, given)}",
                f"pass {what} with one of the logged metric names",
            )
    reward = reward or first_match(names, REWARD_CANDIDATES)
    if reward is None:
        raise _error(
            log.path,
            "a train-reward metric (critic/score/mean, train/reward, reward)",
            f"metrics {likely_names(names, 'reward')}",
            "pass --reward KEY",
        )
    return reward, test or first_match(names, TEST_CANDIDATES)


def _newest_checkpoint_first(p: Path) -> tuple:
    match = re.search(r"checkpoint-(\d+)", str(p))
    return (-(int(match.group(1)) if match else 0), str(p))


def _read_jsonl(file: Path) -> tuple[list[tuple[int, str, float]], str]:
    records: list[tuple[int, str, float]] = []
    fmt = None
    lines = read_regular(file, TrainingLogError).decode("utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise _error(
                file,
                "one JSON object per line",
                f"invalid JSON at line {number} ({reason})",
                "the log was cut short or corrupted: remove or repair that line",
            ) from None
        if not isinstance(obj, dict):
            raise _error(
                file,
                "one JSON object per line",
                f"a {type(obj).__name__} at line {number}",
                "check that this is a training log",
            )
        fmt = fmt or ("verl" if "data" in obj and "step" in obj else "jsonl")
        records += _row_records(obj, file, number)
    return _nonempty(records, file, lines), fmt or "jsonl"


def _row_records(obj: dict, file: Path, number: int) -> list[tuple[int, str, float]]:
    """(step, name, value) of one logged row: verl's file logger's `{"step", "data"}`, or a flat row whose
    step is its first step key (`STEP_KEYS`: the framework's own before W&B's `_step`)."""
    if "data" in obj and "step" in obj:
        if not isinstance(obj["data"], dict):
            raise _error(
                file,
                "'data' to be an object of metrics",
                f"a {type(obj['data']).__name__} at line {number}",
                "check that this is verl's file-logger output",
            )
        step, values = _step(obj["step"], file, number), obj["data"]
    else:
        step, values = _step(_step_value(obj, file, number), file, number), obj
    return [(step, k, float(v)) for k, v in values.items() if _numeric(v) and k not in STEP_KEYS]


def _nonempty(records: list, file: Path, rows: list) -> list:
    if not records:
        raise _error(
            file,
            "numeric metrics with steps",
            "an empty log" if not rows else "no numeric metrics",
            "point at the training run's metrics log",
        )
    return records


def _read_trainer_state(file: Path) -> list[tuple[int, str, float]]:
    try:
        state = json.loads(_text(file))
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f"at line {exc.lineno} ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise _error(
            file,
            "a JSON trainer_state",
            f"invalid JSON {where}",
            "re-copy the file; it was cut short or corrupted",
        ) from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list) or not history:
        raise _error(
            file,
            "a non-empty 'log_history' list",
            "none" if history is None else repr(history)[:40],
            "point at the trainer_state.json of a run that logged metrics",
        )
    records = []
    for index, entry in enumerate(history, start=1):
        if not isinstance(entry, dict) or "step" not in entry:
            raise _error(
                file, "log_history entries with a 'step'", f"entry {index}: {str(entry)[:60]}", "check the file"
            )
        step = _step(entry["step"], file, index)
        records += [(step, k, float(v)) for k, v in entry.items() if _numeric(v) and k not in STEP_KEYS]
    return records


def _read_csv(file: Path) -> list[tuple[int, str, float]]:
    try:
        rows = list(csv.reader(_text(file).splitlines()))
    except csv.Error as exc:
        raise _error(file, "a CSV file", f"{exc}", "export the run's history again") from None
    if len(rows) < 2:
        raise _error(file, "a header and at least one row", f"{len(rows)} line(s)", "export the run's history again")
    header = rows[0]
    step_cols = [header.index(k) for k in STEP_KEYS if k in header]  # the framework's own step first
    if not step_cols:
        raise _error(file, f"a step column ({', '.join(STEP_KEYS)})", f"columns {header[:8]}", "export with steps")
    names: list[str | None] = [_csv_metric(h) for h in header]
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise _error(file, f"{len(header)} fields per row", f"{len(row)} at line {number}", "repair that line")
        step_col = next((c for c in step_cols if row[c].strip()), step_cols[0])  # train or eval rows
        step = _step(row[step_col], file, number)
        for i, cell in enumerate(row):
            name = names[i]
            if i not in step_cols and name and cell.strip():
                try:
                    number_value = float(cell)
                    if math.isfinite(number_value):  # NaN / inf cells are no measurement
                        records.append((step, name, number_value))
                except ValueError:
                    continue  # text columns (run names, notes) are not metrics
    return records


def _csv_metric(header: str) -> str | None:
    if header.endswith(("__MIN", "__MAX")):
        return None
    return header.split(" - ", 1)[1] if " - " in header else header


def _read_tensorboard(files: list[Path]) -> list[tuple[int, str, float]]:
    """Scalars of every event file, merged by (step, tag): the value with the latest wall time wins."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    latest: dict[tuple[int, str], tuple[float, float]] = {}
    for file in files:
        accumulator = EventAccumulator(str(file), size_guidance={"scalars": 0, "tensors": 0})
        try:
            accumulator.Reload()
        except Exception as exc:  # the reader raises its own types on corrupt files
            raise _error(file, "a TensorBoard event file", f"{type(exc).__name__}: {exc}", "re-copy the file") from exc
        for tag in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(tag):
                key = (int(event.step), tag)
                if key not in latest or event.wall_time >= latest[key][0]:
                    latest[key] = (event.wall_time, float(event.value))
    if not latest:
        where = files[0] if len(files) == 1 else files[0].parent
        raise _error(where, "scalar summaries", "none", "point at the event files the trainer wrote metrics to")
    return [(step, tag, value) for (step, tag), (_, value) in sorted(latest.items())]


def _step_value(obj: dict, file: Path, number: int):
    for key in STEP_KEYS:
        if key in obj:
            return obj[key]
    raise _error(
        file,
        f"a step key ({', '.join(STEP_KEYS)}) in every line",
        f"none at line {number}",
        "use a log that records the training step",
    )


def _step(value, file: Path, number: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _error(file, "an integer step", f"{value!r} at line {number}", "check the log's step field")
    try:
        step = float(value)
    except (ValueError, OverflowError):
        raise _error(file, "an integer step", f"{value!r} at line {number}", "check the log's step field") from None
    if not math.isfinite(step) or step != int(step) or not 0 <= step < 2**63:
        raise _error(
            file, "an integer step from 0 to 2^63 - 1", f"{value!r} at line {number}", "check the log's step field"
        )
    return int(step)


def _text(file: Path) -> str:
    """The file as UTF-8 text, or a one-line error naming the first byte that is not."""
    try:
        return read_regular(file, TrainingLogError).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(
            file,
            "a UTF-8 text file",
            f"a byte that is not UTF-8 at offset {exc.start}",
            "convert the log to UTF-8, or point at the trainer's own log file",
        ) from None


def _numeric(value) -> bool:
    """A finite number that fits a float64 (an integer of 400 digits does not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _error(file: Path, expected: str, found: str, fix: str) -> TrainingLogError:
    return TrainingLogError(str(file), expected, found, fix)


def summarize(log: TrainingLog, reward: str, test: str | None) -> dict:
    """Spearman rho between reward and test over their shared steps, the step where each peaks, and the
    log's format, path and files (a `run_summary` row without its run); without a test metric, why."""
    note = None if test else test_note(log.names())
    return {
        "reward_metric": reward,
        "test_metric": test,
        **summarize_series(log.series(reward), log.series(test) if test else {}),
        "log_format": log.format,
        "log_path": str(log.path),
        "test_metric_note": note,
        "n_log_files": len(log.sources),
    }
