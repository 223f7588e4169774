"""Every text in a figure drawn as the characters it is: plotly renders a subset of HTML (`<a href>`, `<b>`,
`<br>`, `<span style>`) in titles, legends, hover labels and category tick labels, so a tensor, module,
metric or run name such as `<a href=...>` became a live link in a page, a report or an exported SVG.

`plain(figure)` returns a copy whose every string (trace names, texts, category values, custom data,
titles, annotations, tick labels) has `&`, `<` and `>` written as entities, which plotly shows literally.
Templates the tool writes itself (`hovertemplate`, `texttemplate`: `%{x}` placeholders, no user text) are
kept. A newline becomes a line break (`<br>`, added after escaping): how a figure builder breaks a long
title for an 800 px wide page. Each output (a page's chart, `rlvr report`, `rlvr figure` and the export
buttons) applies it once, to the figure as built.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

TEMPLATES = frozenset({"hovertemplate", "texttemplate", "hovertemplatefallback"})
"""Keys whose strings are the tool's own templates, kept as written."""


def plain(figure: go.Figure) -> go.Figure:
    """A copy of `figure` with every user-visible string escaped (see the module docstring)."""
    import plotly.graph_objects as go

    return go.Figure(_escaped(figure.to_dict()), skip_invalid=False)


def _escaped(value: Any, key: str = "") -> Any:
    if key in TEMPLATES:
        return value
    if isinstance(value, str):
        return html.escape(value, quote=False).replace("\n", "<br>")  # the tool's own line breaks
    if isinstance(value, dict):
        return {k: _escaped(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_escaped(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":
        return np.array([_escaped(v) for v in value.ravel().tolist()], dtype=object).reshape(value.shape)
    return value
