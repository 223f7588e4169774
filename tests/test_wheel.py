"""`pip install rlvr-lens` as a user does it, without a checkout: the wheel built from this checkout, installed
non-editable in a fresh venv with the tested versions as constraints, its commands run outside the checkout.
The core install analyses a run and says which extra `rlvr serve` needs; the dashboard extra's `rlvr serve`
builds the demo it queues on an empty cache, answers its health check on a non-default port, and every page
renders in Chromium."""

from __future__ import annotations

import pytest

from rlvr_core import __version__

from .browser import launch, needs_browser, walk_every_page
from .installed import build_wheel, install, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    """The wheel installed without extras (`pip install rlvr-lens`) in a fresh venv."""
    root = tmp_path_factory.mktemp("core")
    return install(root / "core", build_wheel(root / "dist"))


def test_the_core_install_runs_outside_the_checkout_and_analyses_a_run(core) -> None:
    where = core.run(
        "python", "-c", "import rlvr_core, rlvr_dashboard, sys; print(rlvr_core.__file__); print(sys.path)"
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(core.venv)) and "site-packages" in where.stdout.splitlines()[0]
    assert core.run("rlvr", "--version").stdout.strip() == f"rlvr-lens {__version__}"
    absent = core.run(
        "python",
        "-c",
        "import importlib.util as u; print([u.find_spec(m) for m in ('streamlit', 'plotly', 'transformers')])",
    )
    assert absent.stdout.strip() == "[None, None, None]"  # the core brings none of the extras
    built = core.run(
        "python",
        "-c",
        "from pathlib import Path; from rlvr_core.fixtures import build_run; "
        "build_run(Path('data'), steps=(10, 20), layout='trl')",
    )
    assert built.returncode == 0, built.stderr[-2000:]
    done = core.run("rlvr", "analyze", "data/run", "--base", "data/base", "--cache", "cache", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    listed = core.run("rlvr", "runs", "--cache", "cache")
    assert listed.returncode == 0 and listed.stdout.startswith("run\t2 step(s)"), listed.stdout + listed.stderr
    claims = core.run("rlvr", "claims", "run", "--cache", "cache", "--json")
    assert claims.returncode == 0, claims.stderr[-2000:]


@pytest.mark.parametrize(
    ("argv", "extra"),
    [(["serve"], "dashboard"), (["figure", "run", "--kind", "alpha-over-steps", "--out", "f.svg"], "report")],
)
def test_a_command_needing_a_missing_extra_names_it_in_one_line(core, argv, extra) -> None:
    done = core.run("rlvr", *argv, "--cache", "cache")
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: rlvr {argv[0]}: expected the '{extra}' extra of rlvr-lens")
    assert f"Fix: pip install 'rlvr-lens[{extra}]'" in line


def test_the_dashboard_extras_serve_built_the_demo_it_queued(installed_dashboard) -> None:
    app, wheel, cache, rows = installed_dashboard
    assert [(row["kind"], row["state"]) for row in rows] == [("demo", "done")], rows
    listed = app.run("rlvr", "runs", "--cache", str(cache)).stdout
    assert {"demo-grpo", "demo-grpo-rank1-k25"} <= {line.split("\t")[0] for line in listed.splitlines()}, listed
    entry = app.run("python", "-c", "from rlvr_core.service.serve import dashboard_entry; print(dashboard_entry())")
    assert entry.stdout.strip().startswith(str(app.venv)), entry.stdout + entry.stderr  # the installed one


@needs_browser
def test_every_page_of_the_installed_dashboard_renders_in_chromium(installed_dashboard) -> None:
    from playwright.sync_api import sync_playwright

    app, _, cache, _ = installed_dashboard
    with serving(app, cache) as (_, url), sync_playwright() as p:
        browser = launch(p)
        walk_every_page(browser.new_page(viewport={"width": 1400, "height": 1000}), url)
        browser.close()
