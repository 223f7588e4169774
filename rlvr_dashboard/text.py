"""User text on a page: shown as the characters it is, never as Markdown; and times as a page shows them."""

from __future__ import annotations

import datetime as dt
import re
import time

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
_AUTOLINK = re.compile(r"(?<=[A-Za-z])://|(?<=[Ww]{3})\.|@")
_ZWSP = "\u200b"


def escape(text: object) -> str:
    """`text` as literal characters inside Streamlit's Markdown (messages, captions, labels): no link, image,
    HTML or formatting that a user's run name, path or error could smuggle into another user's page.
    Markdown characters are backslash-escaped; the starts of bare links (`http://`, `www.`, `@`), which
    Streamlit turns into links even when escaped, get a zero-width space."""
    defused = _AUTOLINK.sub(lambda m: _ZWSP + m.group(0), str(text))
    return _MARKDOWN.sub(r"\\\1", defused)


def clock(stamp: float | None) -> str | None:
    """A Unix time as the server's local `YYYY-MM-DD HH:MM:SS` (None for none)."""
    return None if not stamp else dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def took(job) -> str | None:
    """How long a started job ran (until now while it runs); None before it starts."""
    if job.started_at is None:
        return None
    seconds = (job.finished_at or time.time()) - job.started_at
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
