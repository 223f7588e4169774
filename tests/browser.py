"""Helpers of the real-browser tests: Debian's chromium (Playwright, `executable_path`) against
`streamlit run app.py` on a cache, bound to 127.0.0.1. Opt-in with RLVR_BROWSER_TESTS=1 (`.ci/run` sets it)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
APP_DIR = Path(__file__).resolve().parent.parent
NEEDS_BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("RLVR_BROWSER_TESTS") != "1", reason="set RLVR_BROWSER_TESTS=1"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install chromium"),
]
"""Marks of a test that drives Chromium."""


def needs_browser(test):
    """Mark one test as driving Chromium (skipped unless RLVR_BROWSER_TESTS=1 and chromium is installed)."""
    for mark in NEEDS_BROWSER:
        test = mark(test)
    return test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(cache: Path, **env: str) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on `cache`, healthy; returns (process, url)."""
    port = free_port()
    argv = ["streamlit", "run", "app.py", "--server.headless", "true", "--server.address", "127.0.0.1",
            "--server.port", str(port), "--browser.gatherUsageStats", "false"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=APP_DIR,
        env={**os.environ, "RLVR_CACHE": str(cache), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("streamlit did not become healthy")


def launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


@contextlib.contextmanager
def dashboard_page(cache: Path, width: int = 1400):
    """A Chromium page beside `streamlit run app.py` on `cache`; yields (page, url); stops both."""
    from playwright.sync_api import sync_playwright

    proc, url = start_app(cache)
    try:
        with sync_playwright() as p:
            browser = launch(p)
            yield browser.new_page(viewport={"width": width, "height": 1000}), url
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def page_texts(cache: Path, path: str, texts: list[str], shot: Path | None = None) -> None:
    """Open `path` of the dashboard on `cache` in Chromium: a plotly chart draws, no exception shows, and
    every one of `texts` (Playwright selectors; table cells included) is on the page."""
    with dashboard_page(cache) as (page, url):
        page.goto(f"{url}/{path}")
        page.wait_for_selector(".js-plotly-plot", timeout=90000)
        assert page.locator("[data-testid='stException']").count() == 0, path
        for text in texts:
            page.wait_for_selector(text, state="attached", timeout=30000)
        if shot is not None:
            page.screenshot(path=str(shot), full_page=True)


CHARTED = {"claims", "layers", "spectra", "alignment", "reward", "substitution", "metrics"}
"""Pages that draw at least one chart on the demo's cache."""


def walk_every_page(page, url: str, settle_ms: int = 1500) -> None:
    """Open every page of the navigation at `url`: its title shows, its charts are drawn (pages in `CHARTED`),
    no exception is on it."""
    from rlvr_dashboard.guide import PAGES

    for name, _, _ in PAGES:
        page.goto(f"{url}/{'' if name == 'runs' else name}")
        page.wait_for_selector("h1", timeout=60000)
        if name in CHARTED:
            page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=60000)
        page.wait_for_timeout(settle_ms)  # the page's later charts
        assert page.locator("[data-testid='stException']").count() == 0, f"{name}: an exception shows"
        assert page.locator("h1").first.inner_text(), name
