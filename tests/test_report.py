"""`rlvr report` (one self-contained HTML file, opened in Chromium from file:// with the network off: every
figure renders, no console error) and `rlvr figure` (valid SVG, a one-page PDF), and the dashboard's
SVG / PDF export giving the same figure as `rlvr figure`."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.browser import CHROMIUM, launch

APP = str(Path(__file__).resolve().parent.parent / "app.py")
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install chromium")


def _svg_texts(data: bytes) -> list[str]:
    root = ET.fromstring(data)
    assert root.tag.endswith("svg")
    return sorted(t.text or "" for t in root.iter() if t.tag.endswith("text") and (t.text or "").strip())


@pytest.mark.slow
@needs_chromium
def test_the_report_opens_offline_and_every_figure_renders(quick_demo, tmp_path, cli) -> None:
    from playwright.sync_api import sync_playwright

    _, cache, _ = quick_demo
    out = tmp_path / "report.html"
    code, said, err = cli("report", "demo-grpo", "--out", str(out), "--cache", str(cache))
    assert code == 0, err
    text = out.read_text()
    assert "cache fingerprint" in text and "<script src=" not in text  # plotly's JS is inside the file
    for title in ("Heavy tails", "Rank-1 dynamics", "Alignment of the rank-1 directions", "Reward vs test"):
        assert f"<h2>{title}</h2>" in text, title
    expected = text.count('class="plotly-graph-div"')
    assert expected >= 6
    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(offline=True)
        requests: list[str] = []
        context.route("**/*", lambda route: (requests.append(route.request.url), route.continue_()))
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected}")
        rendered = page.locator(".js-plotly-plot").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert rendered == expected and errors == []
    assert all(url.startswith("file://") for url in requests), requests  # nothing fetched from a network


@pytest.mark.slow
@needs_chromium
def test_rlvr_figure_writes_svg_and_pdf_and_the_dashboard_exports_the_same(quick_demo, tmp_path, cli, monkeypatch):
    from streamlit.testing.v1 import AppTest

    _, cache, _ = quick_demo
    svg, pdf = tmp_path / "alpha.svg", tmp_path / "alpha.pdf"
    for out in (svg, pdf):
        argv = ["figure", "demo-grpo", "--kind", "alpha-over-steps", "--out", str(out), "--cache", str(cache)]
        code, _, err = cli(*argv)
        assert code == 0, err
    texts = _svg_texts(svg.read_bytes())
    assert "α of dW over steps: demo-grpo" in texts and "mlp.down_proj" in texts
    assert any(t.startswith("chance: a Gaussian matrix (") for t in texts)  # the chance band, in the file too
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1
    document = PdfReader(pdf, strict=True)  # a real PDF reader, strict: the title update is well formed
    assert len(document.pages) == 1 and document.metadata.title == "α of dW over steps: demo-grpo"
    assert cli("figure", "demo-grpo", "--kind", "alignment", "--out", str(tmp_path / "x.gif"), "--cache", cache)[0] == 2
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"run": "demo-grpo", "target": "dW"})
    at.switch_page("rlvr_dashboard/views/spectra.py").run()
    buttons = [b for b in at.button if b.label == "Prepare the file"]
    assert buttons, "the SVG / PDF export is missing"
    alpha = next(b for b in buttons if "over-steps" in b.key)
    assert alpha.key == "export_make_α-of-dW-over-steps-demo-grpo"  # the file's name keeps α and the whole run
    alpha.click().run()
    fmt, made = at.session_state[alpha.key.replace("export_make_", "export_file_")]
    assert fmt == "svg" and _svg_texts(made) == texts  # the page's file is `rlvr figure`'s


@pytest.mark.slow
def test_the_runs_page_offers_the_report_as_a_download(quick_demo, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RLVR_CACHE", str(quick_demo[1]))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.selectbox(key="report_run").set_value("demo-grpo")
    next(b for b in at.button if b.label == "Prepare the report").click().run()
    run, data = at.session_state["report_file"]
    assert not at.exception and run == "demo-grpo" and data.startswith(b"<!DOCTYPE html>")
    assert b"RLVR Lens report: demo-grpo" in data
