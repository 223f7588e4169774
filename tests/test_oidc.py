"""OpenID Connect sign-in for real: `oidc-provider-mock` (a real OIDC provider for tests, on a loopback
port, requiring registered clients) is the identity provider of `rlvr serve` with `RLVR_AUTH=oidc`; in
Chromium, alice signs in through the provider's form, sees the Runs page, queues the demo (the job records
her), logs out and is back on the login page; an authorization code issued to another registered client
is refused; a visitor who never signs in gets only the login page on every deep link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import httpx
import pytest

from rlvr_core.cache import queue as jobs
from tests.browser import CHROMIUM, free_port, launch
from tests.conftest import wait_until
from tests.test_serve import _healthy

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("RLVR_BROWSER_TESTS") != "1", reason="set RLVR_BROWSER_TESTS=1"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install chromium"),
]


@pytest.fixture
def provider():
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(require_client_registration=True) as server:
        yield f"http://localhost:{server.server_port}"


def _client(provider: str, redirect: str) -> tuple[str, str]:
    made = httpx.post(f"{provider}/oauth2/clients", json={"redirect_uris": [redirect]})
    assert made.status_code == 201, made.text
    return made.json()["client_id"], made.json()["client_secret"]


def _serve(tmp_path: Path, provider: str) -> tuple[subprocess.Popen, str, Path, list[str], str]:
    port = free_port()
    url = f"http://localhost:{port}"
    client_id, secret = _client(provider, f"{url}/oauth2callback")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        f'[auth]\nredirect_uri = "{url}/oauth2callback"\ncookie_secret = "{os.urandom(16).hex()}"\n'
        f'client_id = "{client_id}"\nclient_secret = "{secret}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "RLVR_AUTH": "oidc", "RLVR_AUTH_SECRETS": str(secrets), "RLVR_DEMO": "off"}
    argv = ["serve", "--port", str(port), "--address", "127.0.0.1", "--cache", str(cache), "--workers", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr_core", *argv], stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    wait_until(lambda: _healthy(url), 90, "the dashboard's health check")
    return proc, url, cache, lines, client_id


def _sign_in(page, url: str, who: str, swap_client: str | None = None) -> None:
    page.goto(url)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/oauth2/authorize**", timeout=30000)
    if swap_client:  # the same request, but for another registered client
        parts = urllib.parse.urlsplit(page.url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["client_id"] = swap_client
        page.goto(urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query))))
    page.get_by_placeholder("sub").fill(who)
    page.get_by_role("button", name="Authorize").click()


def test_sign_in_queue_a_job_sign_out_and_refusals(tmp_path, provider) -> None:
    from playwright.sync_api import sync_playwright

    assert httpx.put(f"{provider}/users/alice@example.com", json={"email": "alice@example.com"}).status_code == 204
    proc, url, cache, lines, _ = _serve(tmp_path, provider)
    shots = Path(os.environ.get("RLVR_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = launch(p)
            for path in ("", "jobs", "layers?run=x", "prediction"):  # never signed in: the login page only
                anonymous = browser.new_page()
                anonymous.goto(f"{url}/{path}")
                anonymous.get_by_role("button", name="Log in").wait_for(timeout=60000)
                assert anonymous.locator("[data-testid='stSidebarNav']").count() == 0, path
                assert anonymous.locator("h1").all_inner_texts() == ["RLVR Lens"], path
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            _sign_in(page, url, "alice@example.com")
            page.wait_for_selector("h1:has-text('Runs')", timeout=60000)
            page.wait_for_selector("text=Signed in as alice", timeout=30000)
            page.get_by_role("button", name="Queue the demo").click()
            page.wait_for_selector("text=demo job", timeout=30000)
            page.screenshot(path=str(shots / "oidc-signed-in.png"), full_page=True)
            page.get_by_role("button", name="Log out").click()  # Streamlit ends its session, then the provider's
            page.get_by_role("button", name="End session").click()
            page.wait_for_url(f"{url}/**", timeout=30000)
            page.goto(url)
            page.get_by_role("button", name="Log in").wait_for(timeout=60000)
            page.goto(f"{url}/jobs")
            page.get_by_role("button", name="Log in").wait_for(timeout=60000)
            assert page.locator("h1").all_inner_texts() == ["RLVR Lens"]
            other_id, _ = _client(provider, f"{url}/oauth2callback")
            mallory = browser.new_page()
            _sign_in(mallory, url, "alice@example.com", swap_client=other_id)  # a code issued to another client
            mallory.wait_for_load_state("networkidle")
            mallory.goto(url)
            mallory.get_by_role("button", name="Log in").wait_for(timeout=60000)
            assert mallory.locator("text=Signed in as").count() == 0
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert [(j.kind, j.submitted_by) for j in jobs.list_jobs(cache)] == [("demo", "alice@example.com")]
