"""User text on a page: shown as the characters it is, never as Markdown; and times as a page shows them."""

from __future__ import annotations

import datetime as dt
import re

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
