"""User text on a page: shown as the characters it is, never as Markdown."""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape(text: object) -> str:
    """`text` as literal characters inside Streamlit's Markdown (messages, captions, labels): no link, image,
    HTML or formatting that a user's run name, path or error could smuggle into another user's page."""
    return _MARKDOWN.sub(r"\\\1", str(text))
