"""The Docker image, built and run with a real engine (opt-in: RLVR_DOCKER_TESTS=1 and a running engine;
`.ci/run` installs docker.io and debootstrap, starts dockerd without a bridge, and sets it). The base
image is a local stand-in for python:3.11-slim (`docker/build-base.sh`; Docker Hub is out of reach), the
Dockerfile is unchanged, everything runs with `--network host` bound to 127.0.0.1. Checks, each failing
with what went wrong: uid 1000; `healthy` within the HEALTHCHECK's start period; the demo's runs listed;
a run mounted read-only at /models analysed by the container's worker into the /data volume, kept across
`docker rm` and a new container; a path outside the data roots refused; `docker stop` within the grace
period with exit 0 and no job left running; the image's size reported. And the container walk: read-only,
without capabilities, on a non-default port, every page in Chromium, an SVG and a PDF exported from a page,
a rank-1 evaluation queued from the Substitution page, the CLI's report, figure and prediction. Figures go to
$RLVR_IMAGE_REPORT (default: the test's temporary folder) as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rlvr_core.fixtures import ModelShape, build_run

from .browser import launch, needs_browser, walk_every_page
from .conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "rlvr-lens:test"
needs_engine = pytest.mark.skipif(
    os.environ.get("RLVR_DOCKER_TESTS") != "1", reason="set RLVR_DOCKER_TESTS=1 (a Docker engine)"
)


def docker(*argv: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """Build the stand-in base (once, cached by tag) and the project's image; (figures, report path)."""
    figures: dict[str, float | str] = {}
    t0 = time.monotonic()
    subprocess.run(["bash", str(ROOT / "docker" / "build-base.sh")], check=True, timeout=900)
    figures["base_seconds"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    docker("build", "--network", "host", "-t", IMAGE, str(ROOT), timeout=1800)
    figures["build_seconds"] = round(time.monotonic() - t0, 1)
    figures["size_mb"] = round(int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout) / 1e6)
    report = Path(os.environ.get("RLVR_IMAGE_REPORT", tmp_path_factory.mktemp("image") / "image.json"))
    yield figures, report
    report.write_text(json.dumps(figures, indent=2))


def readme_run_lines() -> list[list[str]]:
    """The `docker run` lines of the docs' Docker page, split into arguments."""
    import shlex

    text = (ROOT / "docs" / "how-to" / "docker.md").read_text()
    block = text[text.index("## Build and run") :].split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line) for line in block.splitlines() if line.startswith("docker run")]


def run_argv(line: list[str], name: str, volume: str, models: Path, port: int) -> list[str]:
    """The docs' `docker run` line as this machine can run it: the published port becomes the host network
    bound to 127.0.0.1 (no bridge here), the example paths the test's, detached and named."""
    swaps = {"/path/to/runs": str(models), "rlvr-data": volume, "rlvr-lens": IMAGE}
    argv: list[str] = ["run", "-d", "--name", name]
    rest = iter(line[2:])
    for arg in rest:
        if arg == "-p":
            next(rest)
            argv += ["--network", "host", "-e", "RLVR_ADDRESS=127.0.0.1", "-e", f"RLVR_PORT={port}"]
            continue
        for old, new in swaps.items():
            arg = new if arg == old else arg.replace(f"{old}:", f"{new}:")
        argv.append(arg)
    return argv


def test_the_documented_docker_run_lines_are_the_ones_tested() -> None:
    lines = readme_run_lines()
    assert lines[0] == ["docker", "run", "-p", "8501:8501", "-v", "/path/to/runs:/models:ro", "-v", "rlvr-data:/data",
                        "rlvr-lens"]  # fmt: skip
    assert run_argv(lines[0], "c", "v", Path("/m"), 8501) == [
        "run", "-d", "--name", "c", "--network", "host", "-e", "RLVR_ADDRESS=127.0.0.1", "-e", "RLVR_PORT=8501",
        "-v", "/m:/models:ro", "-v", "v:/data", IMAGE,
    ]  # fmt: skip
    assert any("--gpus" in line and "all" in line for line in lines)  # the CUDA variant: documented, not run here


def _run(name: str, volume: str, models: Path, port: int) -> None:
    docker("rm", "-f", name, check=False)
    docker(*run_argv(readme_run_lines()[0], name, volume, models, port))  # the docs' first docker run line


def _in_use(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _health(name: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()


@pytest.mark.slow
@needs_engine
def test_the_image_runs_as_a_service_keeps_its_data_and_stops_cleanly(image, tmp_path) -> None:
    figures, _ = image
    models = tmp_path / "models"
    fx = build_run(models, ModelShape(n_layers=2), steps=(10, 20))
    os.chmod(models, 0o755)
    for path in models.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    volume, name = f"rlvr-test-{os.getpid()}", f"rlvr-test-{os.getpid()}"
    port = next(p for p in range(8597, 8700) if not _in_use(p))  # not 8501: the HEALTHCHECK follows RLVR_PORT
    try:
        t0 = time.monotonic()
        _run(name, volume, models, port)
        assert docker("exec", name, "id", "-u").stdout.strip() == "1000", "the container runs as root"
        wait_until(
            lambda: _health(name) == "healthy", 90, "the HEALTHCHECK reporting healthy", interval=1
        )  # start period 60 s + 30
        figures["healthy_seconds"] = round(time.monotonic() - t0, 1)
        runs = docker("exec", name, "rlvr", "runs").stdout
        assert "demo-grpo" in runs, f"the demo's runs are not listed: {runs}"
        job = docker("exec", name, "rlvr", "submit", "analyze", "/models/run", "--base", "/models/base", "--run",
                     "mounted", "--quiet").stdout.strip()  # fmt: skip

        def state() -> str | None:
            rows = json.loads(docker("exec", name, "rlvr", "jobs", "--json").stdout)
            found = next(r["state"] for r in rows if r["id"] == job)
            return found if found in ("done", "failed", "cancelled") else None

        final = wait_until(state, 300, "the mounted run's analysis", interval=1)
        assert final == "done", docker("exec", name, "rlvr", "jobs").stdout
        outside = docker("exec", name, "rlvr", "analyze", "/etc", "--base", "/models/base", check=False)
        assert outside.returncode == 2 and "data roots" in outside.stderr, outside.stderr
        running = docker("exec", name, "rlvr", "submit", "demo", "--quick", "--out", "/data/demo2").stdout.strip()

        def is_running() -> bool:
            rows = json.loads(docker("exec", name, "rlvr", "jobs", "--json").stdout)
            return any(r["id"] == running and r["state"] == "running" for r in rows)

        wait_until(is_running, 60, "a job running when the container is stopped", interval=1)
        t0 = time.monotonic()
        docker("stop", name, timeout=120)
        figures["stop_seconds"] = round(time.monotonic() - t0, 1)
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", f"docker stop: exit code {code}: {docker('logs', '--tail', '20', name).stderr}"
        docker("rm", name)
        queue = docker("run", "--rm", "-v", f"{volume}:/data", "--entrypoint", "rlvr", IMAGE, "jobs", "--json").stdout
        left = [(r["id"], r["state"]) for r in json.loads(queue) if r["state"] == "running"]
        assert not left, f"jobs left running after docker stop: {left}"  # the worker put its job back
        _run(name, volume, models, port)  # a new container on the same volume
        runs = docker("exec", name, "rlvr", "runs").stdout
        assert "mounted" in runs, f"the volume lost the analysis: {runs}"
        assert fx.base_dir.is_dir()
    finally:
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", volume, check=False)
    assert figures["size_mb"] < 3400, f"image of {figures['size_mb']} MB (budget 3,400 MB: docs/how-to/docker.md)"
    listing = docker("run", "--rm", "--entrypoint", "ls", IMAGE, "-a", "/app").stdout.split()
    assert not {".git", "tests", ".venv", "cache"} & set(listing), listing
    assert shutil.which("docker")


def export_from_the_page(page, url: str, fmt: str, out: Path) -> bytes:
    """The Layers page's first chart through its "SVG / PDF" popover: the downloaded file's bytes."""
    page.goto(f"{url}/layers")
    page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=60000)
    page.get_by_role("button", name="SVG / PDF").first.click()
    page.locator("[data-testid='stPopoverBody'] label").filter(has_text=fmt).first.click()
    page.get_by_role("button", name="Prepare the file").first.click()
    ready = page.get_by_role("button", name=f"Download {fmt.upper()}").first
    error = page.locator("[data-testid='stAlertContentError']")
    ready.or_(error).first.wait_for(timeout=120000)
    assert error.count() == 0, f"the {fmt} export failed in the container: {error.all_inner_texts()}"
    with page.expect_download(timeout=60000) as download:
        ready.click()
    download.value.save_as(out / f"figure.{fmt}")
    data = (out / f"figure.{fmt}").read_bytes()
    assert data, f"an empty {fmt} download"
    return data


def queue_rank1_from_the_page(page, url: str) -> None:
    """The Substitution page's form: step 200 of the demo against its rank-1 part, 20 problems."""
    page.goto(f"{url}/substitution")
    page.wait_for_selector("h1", timeout=60000)
    page.get_by_label("Steps (comma-separated; empty: all analysed steps)").fill("200")
    page.get_by_label("Limit (0: all problems)").fill("20")
    page.get_by_label("Max new tokens").fill("8")
    page.get_by_role("button", name="Start the comparison").click()
    page.wait_for_selector("text=compare job", timeout=60000)


@pytest.mark.slow
@needs_engine
@needs_browser
def test_the_container_read_only_without_capabilities_serves_every_page_exports_and_evaluates(image, tmp_path):
    """The container as deployments run it: `--read-only` (a tmpfs at /tmp), `--cap-drop ALL`, a non-default
    port set through the environment. Healthy; every page renders in Chromium; a figure exported from a page
    downloads as a non-empty SVG and PDF; a rank-1 evaluation queued from the Substitution page completes; the
    CLI's report, figure and prediction work inside it."""
    from playwright.sync_api import sync_playwright

    figures, _ = image
    name, volume = f"rlvr-walk-{os.getpid()}", f"rlvr-walk-{os.getpid()}"
    port = next(p for p in range(8611, 8700) if not _in_use(p))
    url = f"http://127.0.0.1:{port}"
    argv = ["run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "-e", f"RLVR_PORT={port}", "-e", "RLVR_ADDRESS=127.0.0.1", "-v", f"{volume}:/data", IMAGE]  # fmt: skip
    docker("rm", "-f", name, check=False)
    try:
        docker(*argv)
        wait_until(lambda: _health(name) == "healthy", 120, "the read-only container healthy", interval=1)
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            walk_every_page(page, url)
            svg = export_from_the_page(page, url, "svg", tmp_path)
            assert b"<svg" in svg[:2000], svg[:200]
            pdf = export_from_the_page(page, url, "pdf", tmp_path)
            assert pdf.startswith(b"%PDF"), pdf[:20]
            figures.update(svg_bytes=len(svg), pdf_bytes=len(pdf))
            queue_rank1_from_the_page(page, url)
            browser.close()

        def compare_done() -> str | None:
            rows = json.loads(docker("exec", name, "rlvr", "jobs", "--json").stdout)
            states = [r["state"] for r in rows if r["kind"] == "compare"]
            return states[0] if states and states[0] in ("done", "failed", "cancelled") else None

        final = wait_until(compare_done, 600, "the rank-1 evaluation queued from the page", interval=2)
        assert final == "done", docker("exec", name, "rlvr", "jobs").stdout
        for command in (["report", "demo-grpo", "--out", "/tmp/r.html"],
                        ["figure", "demo-grpo", "--kind", "alpha-over-steps", "--out", "/tmp/f.pdf"],
                        ["predict", "demo-grpo", "--from-step", "100", "--to-step", "200"]):  # fmt: skip
            done = docker("exec", name, "rlvr", *command, check=False, timeout=600)
            assert done.returncode == 0, f"rlvr {command[0]} in the container: {done.stderr[-1500:]}"
    finally:
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", volume, check=False)
