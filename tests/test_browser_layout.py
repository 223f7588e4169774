"""The layout walk: every page of the dashboard on the quick demo's cache, in Chromium at 800 and 1400 px
wide, measured in the browser itself. It fails on a chart whose plotting area is narrower than 300 px and on
a legend that overlaps its plot or an axis title (plotly's own SVG: `.nsewdrag` is a subplot's plotting
area, `g.legend` the legend, `.xtitle` an x-axis title). Screenshots of every chart go to
$RLVR_SCREENSHOTS (default: the test's temporary folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rlvr_dashboard.guide import PAGES

from .browser import CHARTED, NEEDS_BROWSER, dashboard_page

pytestmark = [*NEEDS_BROWSER, pytest.mark.slow]

MIN_WIDTH = 300
GEOMETRY = """() => [...document.querySelectorAll('.js-plotly-plot')].map(p => {
  const box = e => { const b = e.getBoundingClientRect(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
  const legend = p.querySelector('g.legend .bg') || p.querySelector('g.legend');
  const title = p.querySelector('.gtitle');
  return {title: title ? title.textContent : '', plots: [...p.querySelectorAll('.nsewdrag')].map(box),
          legend: legend ? box(legend) : null, xtitles: [...p.querySelectorAll('.xtitle')].map(box)};
})"""
"""Each chart's title, plotting areas, legend and x-axis titles, as the browser laid them out."""


def _overlap(a: dict, b: dict) -> bool:
    across = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
    return across and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def problems(page_name: str, width: int, charts: list[dict]) -> list[str]:
    """What is wrong with the laid-out charts of one page at one width (nothing: an empty list)."""
    found = []
    for chart in charts:
        where = f"{page_name} at {width} px, chart '{chart['title'][:60]}'"
        plots = [p for p in chart["plots"] if p["w"] > 0]
        span = max(p["x"] + p["w"] for p in plots) - min(p["x"] for p in plots) if plots else 0
        if span < MIN_WIDTH:
            found.append(f"{where}: plotting area {span:.0f} px wide (< {MIN_WIDTH})")
        legend = chart["legend"]
        if legend and legend["w"] > 0:
            hit = [p for p in plots + chart["xtitles"] if _overlap(legend, p)]
            if hit:
                found.append(f"{where}: the legend {legend} overlaps {hit[0]}")
    return found


@pytest.mark.parametrize("width", [800, 1400])
def test_every_page_keeps_its_charts_wide_and_its_legends_off_the_plot(quick_demo, tmp_path, width) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(quick_demo[1], cache)
    shots = Path(os.environ.get("RLVR_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    found, measured = [], 0
    with dashboard_page(cache, width) as (page, url):
        for name, _, _ in PAGES:
            page.goto(f"{url}/{'' if name == 'runs' else name}")
            page.wait_for_selector("h1", timeout=60000)
            if name in CHARTED:
                page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=60000)
            page.wait_for_timeout(2500)  # the page's later charts
            assert page.locator("[data-testid='stException']").count() == 0, name
            charts = page.evaluate(GEOMETRY)
            assert charts or name not in CHARTED, f"{name}: no chart drawn"
            for i in range(len(charts)):
                page.locator(".js-plotly-plot").nth(i).screenshot(path=str(shots / f"{name}-{width}-{i}.png"))
            found += problems(name, width, charts)
            measured += len(charts)
    assert measured >= len(CHARTED) and not found, "\n".join(found)


def test_the_walk_catches_a_narrow_chart_and_an_overlapping_legend() -> None:
    plot = {"x": 100, "y": 100, "w": 250, "h": 200}
    assert problems("p", 800, [{"title": "t", "plots": [plot], "legend": None, "xtitles": []}])  # too narrow
    wide = {**plot, "w": 400}
    legend = {"x": 300, "y": 120, "w": 150, "h": 60}  # a legend column drawn over the plot's right side
    assert problems("p", 800, [{"title": "t", "plots": [wide], "legend": legend, "xtitles": []}])
    below = {"x": 100, "y": 340, "w": 300, "h": 40}
    assert not problems("p", 800, [{"title": "t", "plots": [wide], "legend": below, "xtitles": []}])
