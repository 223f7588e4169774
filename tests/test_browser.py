"""A real browser (Debian's chromium, driven by Playwright) against `streamlit run app.py` on the quick
demo's cache: every page renders (a plotly chart where the page has one), and an analysis submitted from
the Runs page finishes with a worker running; behind a sign-in proxy (trusted header) anonymous visitors
see only the sign-in note and jobs record the signed-in user. Screenshots go to $RLVR_SCREENSHOTS (default: the test's
temporary folder). Opt-in locally with RLVR_BROWSER_TESTS=1; `.ci/run` sets it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr_core.cache import queue as jobs
from rlvr_core.fixtures import ModelShape, build_run

from .browser import NEEDS_BROWSER, launch, start_app

pytestmark = [*NEEDS_BROWSER, pytest.mark.slow]


@pytest.fixture
def server(quick_demo, tmp_path):
    cache = tmp_path / "cache"  # a copy: the UI test adds a run, other tests read the demo's cache as it is
    shutil.copytree(quick_demo[1], cache)
    proc, url = start_app(cache)
    yield url, cache
    proc.terminate()
    proc.wait(timeout=30)


def test_behind_a_sign_in_proxy_anonymous_visitors_see_nothing_and_jobs_record_the_user(tmp_path):
    from playwright.sync_api import sync_playwright

    cache = tmp_path / "cache"
    proc, url = start_app(cache, RLVR_AUTH="header", RLVR_AUTH_HEADER="X-Forwarded-User")
    try:
        with sync_playwright() as p:
            browser = launch(p)
            for path in ("jobs", "", "layers", "substitution?run=x"):  # each a new session's first load
                anonymous = browser.new_page()
                anonymous.goto(f"{url}/{path}")
                anonymous.wait_for_selector("text=Not signed in", timeout=60000)
                assert anonymous.locator("h1").all_inner_texts() == ["RLVR Lens"], path
                assert anonymous.locator("[data-testid='stSidebarNav']").count() == 0
            alice = browser.new_context(extra_http_headers={"X-Forwarded-User": "alice"}).new_page()
            alice.goto(url)
            alice.wait_for_selector("h1:has-text('Runs')", timeout=60000)
            alice.get_by_role("button", name="Queue the demo").click()
            alice.wait_for_selector("text=demo job", timeout=30000)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [(j.kind, j.submitted_by) for j in jobs.list_jobs(cache)] == [("demo", "alice")]


def test_every_page_renders_and_an_analysis_runs_from_the_ui(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, cache = server
    shots = Path(os.environ.get("RLVR_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    fx = build_run(tmp_path / "data", ModelShape(arch="llama"), steps=(10, 20), layout="trl")
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path, charted in (
            ("", False),
            ("claims", True),
            ("layers", True),
            ("spectra", True),
            ("alignment", True),
            ("reward", True),
            ("substitution", False),
            ("jobs", False),
        ):
            page.goto(f"{url}/{path}")
            page.wait_for_selector("h1", timeout=60000)
            if charted:
                page.wait_for_selector(".js-plotly-plot", timeout=60000)
            assert page.locator("[data-testid='stException']").count() == 0, path
            page.screenshot(path=str(shots / f"{path or 'runs'}.png"), full_page=True)
        page.goto(url)  # the Runs page: add a run, check its layout, queue its analysis
        page.wait_for_selector("h1", timeout=60000)
        page.get_by_label("Run folder", exact=True).fill(str(fx.run_dir))
        page.get_by_label("Base model folder", exact=True).fill(str(fx.base_dir))
        page.get_by_label("Name in the cache (optional)").fill("from-the-ui")
        page.get_by_role("button", name="Check", exact=True).click()
        page.wait_for_selector("text=trl layout: 2 checkpoints, steps 10, 20", timeout=30000)
        page.get_by_role("button", name="Queue the analysis").click()
        page.wait_for_selector("text=analyze job", timeout=30000)
        page.goto(f"{url}/jobs")
        page.wait_for_selector("h1", timeout=60000)
        worker = subprocess.run(
            [sys.executable, "-m", "rlvr_core", "worker", "--drain", "--cache", str(cache)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert worker.returncode == 0, worker.stderr
        job = next(j for j in jobs.list_jobs(cache) if "from-the-ui" in j.argv)
        assert job.state == "done", jobs.log_tail(cache, job.id)
        # the live queue shows it finished (dataframe cells live in the grid's accessible table)
        page.wait_for_selector("[data-testid^=glide-cell] >> text=done", state="attached", timeout=30000)
        page.screenshot(path=str(shots / "jobs-done.png"), full_page=True)
        page.goto(url)
        page.wait_for_selector("[data-testid^=glide-cell] >> text=from-the-ui", state="attached", timeout=60000)
        browser.close()


def test_two_users_one_cannot_cancel_the_others_job_and_user_text_stays_text(tmp_path):
    """alice's job carries Markdown in its arguments and its error (an image pointing at a local server);
    bob's browser shows them as text, fetches nothing, and offers him no Cancel; alice's does."""
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    hits: list[str] = []

    class Pixel(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    pixel = http.server.HTTPServer(("127.0.0.1", 0), Pixel)
    threading.Thread(target=pixel.serve_forever, daemon=True).start()
    lure = f"![pwned](http://127.0.0.1:{pixel.server_port}/pixel.png)"
    cache = tmp_path / "cache"
    failed, _ = jobs.submit(cache, "demo", ["--out", lure], submitted_by="alice")
    job = jobs.claim(cache, "w")
    running, _ = jobs.submit(cache, "logs", ["/models/x", "--run", lure], submitted_by="alice")
    jobs.finish(cache, job, "failed", error=f"could not read {lure}: [click here](http://127.0.0.1:9/phish)")
    proc, url = start_app(cache, RLVR_AUTH="header", RLVR_AUTH_HEADER="X-Forwarded-User")
    try:
        with sync_playwright() as p:
            browser = launch(p)
            bob = browser.new_context(extra_http_headers={"X-Forwarded-User": "bob"}).new_page()
            for ident in (failed, running):
                bob.goto(f"{url}/jobs")
                bob.wait_for_selector("h1:has-text('Jobs')", timeout=60000)
                _choose_job(bob, ident)
                shown = bob.locator("[data-testid='stCode']", has_text=lure).first  # the literal text, as text
                shown.wait_for(timeout=30000)
                bob.wait_for_timeout(1500)  # let the page settle (an image would be fetched by now)
                bob.screenshot(path=str(tmp_path / f"bob-{ident}.png"), full_page=True)
                assert bob.get_by_role("button", name="Cancel this job").count() == 0
                assert bob.locator("a[href*='phish'], img[src*='pixel']").count() == 0
            alice = browser.new_context(extra_http_headers={"X-Forwarded-User": "alice"}).new_page()
            alice.goto(f"{url}/jobs")
            alice.wait_for_selector("h1:has-text('Jobs')", timeout=60000)
            _choose_job(alice, running)
            assert alice.locator("text=cancelled >> visible=true").count() == 0
            alice.get_by_role("button", name="Cancel this job").click()
            # what alice sees: the page's "<id>: cancelled", or after a rerun the job's line; not the grid's
            # accessible cell, which matches the text too but is never visible (found in CI: it came first)
            alice.locator("text=cancelled >> visible=true").first.wait_for(timeout=30000)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        pixel.shutdown()
    assert hits == []
    assert jobs.get(cache, running).state == "cancelled" and jobs.get(cache, failed).state == "failed"


def _choose_job(page, ident: str) -> None:
    """Pick a job in the Jobs page's selectbox."""
    page.wait_for_selector("[data-testid='stSelectbox']", timeout=60000)
    page.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name=ident).click()


def _widgets(page) -> list[str]:
    """The shown value of every selectbox, radio choice and multiselect of a page, in order, once the page
    has finished drawing: the same list read twice 1.5 s apart (a cold first load of a page draws its
    widgets over several seconds), at most 60 s."""
    page.wait_for_selector("h1", timeout=60000)
    previous: list[str] | None = None
    for _ in range(40):
        page.wait_for_timeout(1500)
        boxes = page.locator("[data-testid='stSelectbox'] input[role='combobox']").evaluate_all(
            "els => els.map(e => e.value)"
        )
        radios = page.locator("[data-testid='stRadio'] input:checked").evaluate_all("els => els.map(e => e.value)")
        shown = [b.strip() for b in boxes] + [str(r) for r in radios]
        if shown == previous:
            return shown
        previous = shown
    return previous or []


def test_selections_follow_the_user_and_every_url_round_trips(server, tmp_path):
    """Layers -> Spectra -> Alignment -> Layers with a non-default run and step: kept on every page; each
    page's URL, opened in a fresh browser, shows the same widgets; an unknown page says so."""
    from playwright.sync_api import sync_playwright

    url, _ = server
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/layers")
        page.wait_for_selector("h1:has-text('Layers')", timeout=60000)
        for label, value in (("Run", "demo-grpo-rank1-k10"), ("Step", "10")):
            page.get_by_role("combobox", name=label, exact=True).click()
            page.get_by_role("option", name=value, exact=True).click()
            page.wait_for_timeout(1000)
        urls = {}
        for name in ("Spectra", "Alignment", "Layers"):
            page.get_by_role("link", name=name, exact=True).click()
            page.wait_for_selector(f"h1:has-text('{name if name != 'Alignment' else 'Rank-1'}')", timeout=60000)
            shown = _widgets(page)
            assert "demo-grpo-rank1-k10" in shown, (name, shown)
            if name != "Alignment":
                assert "10" in shown, (name, shown)
            assert "run=demo-grpo-rank1-k10" in page.url, page.url
            urls[name] = (page.url, shown)
        for name, (address, shown) in urls.items():
            fresh = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            fresh.goto(address)
            assert _widgets(fresh) == shown, name
            fresh.close()
        page.goto(f"{url}/reward_vs_test")
        page.wait_for_selector("text=Page not found", timeout=60000)
        browser.close()


def test_a_page_showing_a_watched_run_gains_its_new_step_and_keeps_the_selection(tmp_path):
    """The Layers page open on a watched run, step 10 chosen; the trainer writes step 30, the watcher and a
    worker analyse it: without a reload the page's step picker offers 30, still shows 10, and the live
    indicator says step 30 was analysed."""
    from playwright.sync_api import sync_playwright

    fx = build_run(tmp_path / "fx", ModelShape(n_layers=2), steps=(10, 20, 30))
    run_dir, cache = tmp_path / "live", tmp_path / "cache"
    for step in (10, 20):
        shutil.copytree(fx.run_dir / f"checkpoint-{step}", run_dir / f"checkpoint-{step}")
    watch = [str(run_dir), "--base", str(fx.base_dir), "--run", "live", "--interval", "0.5", "--settle", "1"]
    rlvr = [sys.executable, "-m", "rlvr_core"]
    subprocess.run([*rlvr, "submit", "watch", *watch, "--cache", str(cache)], check=True, capture_output=True)
    helpers = [
        subprocess.Popen([*rlvr, command, "--cache", str(cache)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command in ("watcher", "worker")
    ]
    proc, url = start_app(cache)
    shots = Path(os.environ.get("RLVR_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/layers?run=live&step=10")
            page.wait_for_selector("text=live: step 20 analysed", timeout=180000)
            assert _widgets(page)[:2] == ["live", "10"]
            shutil.copytree(fx.run_dir / "checkpoint-30", run_dir / "checkpoint-30")
            page.wait_for_selector("text=live: step 30 analysed", timeout=180000)
            page.wait_for_timeout(1500)
            assert _widgets(page)[:2] == ["live", "10"] and "step=10" in page.url
            page.get_by_role("combobox", name="Step", exact=True).click()
            page.get_by_role("option", name="30", exact=True).wait_for(timeout=10000)
            page.keyboard.press("Escape")
            page.screenshot(path=str(shots / "layers-live.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=60)
