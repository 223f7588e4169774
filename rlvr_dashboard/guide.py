"""The dashboard's pages and the question each answers: the navigation (`app.py`) and the start guide on the
Runs page (`page_guide`) are built from this one list, so the guide names every page there is."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES: tuple[tuple[str, str, str], ...] = (
    ("runs", "Runs", "Which runs are in the cache, how far each is analysed, and how to add one (or the demo)."),
    ("claims", "Claims", "Does each published claim about RLVR updates hold on this run, measured against chance?"),
    ("layers", "Layers", "How big and how rank-1 is each layer's update ΔW (σ1, rank-1 energy, stable rank)?"),
    ("spectra", "Spectra", "Are the weights' (and updates') singular values heavy-tailed: α, and how good the fit is?"),
    ("alignment", "Alignment", "Do the top left singular vectors u1 of the updates align as training goes on?"),
    ("reward", "Reward vs test", "Does held-out accuracy follow the training reward, or has the reward overfit?"),
    (
        "substitution",
        "Substitution",
        "Does rank-k ΔW keep the accuracy: on which problems, in which modules?",
    ),
    ("prediction", "Prediction", "Do the early steps' rank-1 updates predict a later checkpoint?"),
    ("metrics", "Metrics vs accuracy", "Which spectral measure tracks held-out accuracy across steps (and seeds)?"),
    ("jobs", "Jobs", "What is queued, running or done: progress, times and logs of every job."),
)
"""(file name in `views/`, title, the question the page answers), in navigation order."""

VIEWS = Path(__file__).resolve().parent / "views"


def page_file(name: str) -> str:
    """The page `name`'s file, by absolute path: the same page whether Streamlit runs the package's entry
    script or a checkout's `app.py`."""
    return str(VIEWS / f"{name}.py")


ABOUT = (
    "RLVR Lens shows what reinforcement learning with verifiable rewards did to a model's weights: for each "
    "checkpoint, the update ΔW = W_step − W_base of every linear layer, read at the precision it was saved in. "
    "Each page answers one question, each measure beside what chance would give."
)


def page_guide(expanded: bool) -> None:
    """The start guide: what the tool answers, and a link to each page with its question."""
    with st.expander("Start here: what RLVR Lens answers, page by page", expanded=expanded):
        st.markdown(ABOUT)
        for name, title, question in PAGES:
            left, right = st.columns([1, 3])
            left.page_link(page_file(name), label=title)
            right.markdown(question)
