"""The package's optional parts (pyproject's extras) and the check a command makes before it needs one.

`pip install rlvr-lens` is the analysis core: read checkpoints and logs, analyse, the cache, the CLI. What
the rest needs comes with an extra (exact versions: requirements.txt, used as constraints):

    report     plotly, kaleido (figures, the HTML report, SVG/PDF export)
    eval       transformers, math-verify (evaluations, rank-k substitution, the demo's tiny model)
    dashboard  streamlit (+ report, eval: the pages draw figures, the workers run the demo and evaluations)
    ray        ray (`rlvr worker --backend ray`)
    wandb      wandb (W&B offline runs, run-*.wandb, as training logs)
    all        every one of them

`require(extra, what)` raises a `MissingExtraError` naming the extra to install, before anything starts, so a
command that needs one says so in one line instead of failing on an import halfway through. Looked up with
`importlib.util.find_spec`: nothing is imported here.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

from ..errors import MissingExtraError

_REPORT, _EVAL = ("plotly", "kaleido"), ("transformers", "math_verify")
EXTRAS: dict[str, tuple[str, ...]] = {
    "report": _REPORT,
    "eval": _EVAL,
    "dashboard": ("streamlit", "authlib", *_REPORT, *_EVAL),  # pyproject: rlvr-lens[report,eval] + streamlit
    "ray": ("ray",),
    "wandb": ("wandb",),
}
"""Each extra and the modules it brings (import names), as pyproject.toml's optional-dependencies declare."""


def missing(extra: str) -> list[str]:
    """The modules of `extra` this environment lacks."""
    return [module for module in EXTRAS[extra] if find_spec(module) is None]


def require(extra: str, what: str) -> None:
    """Raise MissingExtraError when `what` (a command, a page's action) needs `extra` and it is not installed."""
    lacking = missing(extra)
    if lacking:
        raise MissingExtraError(
            what,
            f"the '{extra}' extra of rlvr-lens ({', '.join(EXTRAS[extra])})",
            f"no module {', '.join(lacking)} in this Python ({sys.executable})",
            f"pip install 'rlvr-lens[{extra}]' (with the tested versions: -c requirements.txt)",
        )
