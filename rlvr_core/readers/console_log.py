"""verl's console logger: metrics printed as text lines, read back into (step, name, value).

verl's default loggers are `console` and `wandb`; a run without W&B access leaves only its stdout. verl
0.9.1 prints each step as (`verl/utils/logger/aggregate_logger.py`, `concat_dict_to_str`):

    step:12 - critic/score/mean:np.float64(0.125) - val-core/openai/gsm8k/acc/mean@1:0.5 - timing_s/gen:3.2

numbers through `pprint.pformat` (numpy 2 scalars as `np.float64(0.125)`), lines possibly prefixed by
Ray (`(TaskRunner pid=1234) step:12 - ...`) and mixed with any other output. Lines without `step:N - `
are skipped; values that are not finite numbers (`True`, `nan`) are too. `is_console_log` tells such a
file from a JSONL one by its first lines.
"""

from __future__ import annotations

import math
import re

_LINE = re.compile(r"^(?:.*?\s)?step:(?P<step>[0-9]{1,18}) - (?P<rest>.+)$")
_NUMPY = re.compile(r"^np\.(?:float|int|uint)(?:16|32|64|128)\((?P<inner>[^()]*)\)$")


def is_console_log(text: str, lines: int = 200) -> bool:
    """True when one of the first `lines` lines is a verl console metrics line."""
    return any(_LINE.match(line) for line in text.splitlines()[:lines])


def parse_console(text: str) -> list[tuple[int, str, float]]:
    """(step, metric, value) of every metrics line in `text`."""
    records = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        step = int(match["step"])
        for item in match["rest"].split(" - "):
            name, sep, raw = item.rpartition(":")
            value = _number(raw.strip()) if sep else None
            if name and value is not None:
                records.append((step, name.strip(), value))
    return records


def _number(text: str) -> float | None:
    numpy = _NUMPY.match(text)
    if numpy:
        text = numpy["inner"]
    if text in ("True", "False"):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
