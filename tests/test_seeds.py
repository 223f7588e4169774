"""Several seeds of the demo (`rlvr demo --seeds`), its numbers' reproducibility, and the seed bands of the
dashboard. The two-seed quick build runs under a competing CPU load, and its seed 0 must give exactly the
numbers of the session's quick demo (built without the load): the README's reproducibility claim."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvr_core.cache import Cache
from rlvr_core.demo import claims_tables
from rlvr_core.demo.seeds_tables import embedded, markdown
from rlvr_core.errors import UsageError
from rlvr_core.math.stats import seed_interval

from .browser import needs_browser, page_texts

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def test_seed_interval_is_the_student_t_interval_of_the_mean() -> None:
    stats = seed_interval([1.0, 2.0, 3.0, None, math.nan])
    assert stats["n"] == 3 and stats["mean"] == 2.0 and stats["sd"] == 1.0
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert stats["low"] == pytest.approx(2 - half) and stats["high"] == pytest.approx(2 + half)
    one = seed_interval([0.5])
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["low"])
    assert seed_interval([])["n"] == 0


def test_seed_lists_are_parsed_and_bad_ones_refused(cli) -> None:
    from rlvr_core.cli.demo import _int_list

    assert _int_list("0-2,5", "--seeds") == [0, 1, 2, 5]
    for bad in ("a", "1,1", "", "3-x"):
        with pytest.raises(UsageError):
            _int_list(bad, "--seeds")
    rc, _, err = cli("demo", "--seeds", "0-1", "--model", "smollm2")
    assert rc == 2 and "--seeds" in err


def test_pins_refuse_to_apply_after_torch_is_loaded() -> None:
    import torch  # noqa: F401

    from rlvr_core.system.determinism import pin_cpu_kernels

    with pytest.raises(RuntimeError, match="before torch"):
        pin_cpu_kernels()


@pytest.fixture(scope="module")
def seeds_build(tmp_path_factory) -> tuple[Path, Path, str]:
    """`rlvr demo --seeds 0-1 --sweep 10 --quick`, seed 0 built with a busy-loop process competing for the CPU
    (the load stops once seed 1 starts: seed 1 is only compared for being different)."""
    root = tmp_path_factory.mktemp("seeds")
    out, cache = root / "seeds", root / "cache"
    argv = ["demo", "--seeds", "0-1", "--sweep", "10", "--quick", "--out", str(out), "--cache", str(cache)]
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    with open(root / "stdout", "w") as stdout, open(root / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "rlvr_core", *argv], stdout=stdout, stderr=stderr, text=True)
        try:
            deadline = time.monotonic() + 1200
            while proc.poll() is None and time.monotonic() < deadline:
                if burner.poll() is None and (out / "seed-1").exists():
                    burner.kill()
                time.sleep(0.5)
        finally:
            burner.kill()
            burner.wait()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == 0, (root / "stderr").read_text()[-3000:]
    return out, cache, (root / "stdout").read_text()


@pytest.mark.slow
def test_a_seed_rebuilt_under_load_gives_identical_numbers(seeds_build, quick_demo) -> None:
    alone = json.loads((quick_demo[0] / "demo_report.json").read_text())
    loaded = json.loads((seeds_build[0] / "seed-0" / "demo_report.json").read_text())
    assert loaded["base_accuracy"] == alone["base_accuracy"] and loaded["warmup"] == alone["warmup"]
    assert loaded["runs"]["demo-grpo-s0"] == alone["runs"]["demo-grpo"]
    assert loaded["runs"]["demo-grpo-rank1-k10-s0"] == alone["runs"]["demo-grpo-rank1-k10"]
    assert loaded["rank1"] == alone["rank1"]
    other = json.loads((seeds_build[0] / "seed-1" / "demo_report.json").read_text())
    assert other["runs"]["demo-grpo-s1"] != alone["runs"]["demo-grpo"]  # the comparison can fail
    assert "CPU kernels: MKL_DYNAMIC=FALSE" in quick_demo[2] and "CPU kernels: MKL_DYNAMIC=FALSE" in seeds_build[2]


@pytest.mark.slow
def test_the_seeds_report_has_every_claim_with_its_interval(seeds_build) -> None:
    out, cache, stdout = seeds_build
    report = json.loads((out / "seeds_report.json").read_text())
    assert sorted(report["per_seed"]) == ["0", "1"] and report["seconds"] > 0
    summary = report["summary"]
    assert summary["n_seeds"] == 2 and summary["base_accuracy"]["n"] == 2
    assert summary["base_accuracy"]["low"] < summary["base_accuracy"]["mean"] < summary["base_accuracy"]["high"]
    assert sorted(summary["per_step"], key=int) == ["10", "20"]
    step = summary["per_step"]["20"]
    for claim in ("test_accuracy", "reward", "pool_accuracy", "rank1_accuracy", "alignment"):
        assert step[claim]["n"] == 2, claim
    assert 0 <= step["seeds_with_real_gain"] <= 2
    assert summary["heavy_share_W"]["n"] == 2 and "verdict" in summary["decoupling"]["10"]
    assert "2 seeds in" in stdout and "k=10:" in stdout
    tables = (out / "seeds_report.md").read_text()
    assert tables == markdown(report) and tables.count("\n| 20 | ") == 1 and "| 10 | " in tables
    assert Cache(cache).queries().seed_families() == {
        "demo-grpo": ["demo-grpo-s0", "demo-grpo-s1"],
        "demo-grpo-rank1-k10": ["demo-grpo-rank1-k10-s0", "demo-grpo-rank1-k10-s1"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("page", ["reward", "substitution"])
def test_pages_draw_seed_families_as_bands(seeds_build, page, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RLVR_CACHE", str(seeds_build[1]))
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(f"rlvr_dashboard/views/{page}.py").run()
    assert not at.exception
    assert "Seeds" in [h.value for h in at.subheader]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bands = [t for c in charts for t in c["data"] if t.get("fill") == "toself"]
    means = [t for c in charts for t in c["data"] if "mean of 2 seeds" in str(t.get("name"))]
    assert means, page
    assert len(bands) >= 2  # reward and test (Reward vs test); full and rank-1 accuracy (Substitution)


@pytest.fixture(scope="module")
def compared(seeds_build, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A copy of the 2-seed build's cache whose seed-0 GRPO board compares u1 with its rank-1 twin (one base)."""
    cache = tmp_path_factory.mktemp("compared") / "cache"
    shutil.copytree(seeds_build[1], cache)
    argv = ["claims", "demo-grpo-s0", "--compare", "demo-grpo-rank1-k10-s0", "--json", "--cache", str(cache)]
    proc = subprocess.run([sys.executable, "-m", "rlvr_core", *argv], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cache, json.loads(proc.stdout)


@pytest.mark.slow
def test_the_claims_board_of_a_seed_compares_runs_from_its_base(compared) -> None:
    _, rows = compared
    assert [r["claim_id"] for r in rows][:11] == [
        "seed-1", "seed-2", "seed-3", "seed-4", "mukherjee-1", "mukherjee-2", "mukherjee-3", "zhu-1", "zhu-2",
        "zhu-3", "jin-1",
    ]  # fmt: skip
    cross = rows[-1]
    assert cross["claim_id"] == "u1-demo-grpo-rank1-k10-s0" and cross["reason"] == "step 20"
    assert 0 <= cross["low"] <= cross["value"] <= cross["high"] <= 1 and cross["chance"] < 0.5
    assert {r["verdict"] for r in rows} <= {"supported", "contradicted", "not measurable here"}


@pytest.mark.slow
def test_the_readme_boards_summarise_seeds_and_line_up_their_compared_runs(seeds_build, tmp_path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(seeds_build[1], cache)
    boards = {f"demo-grpo-s{s}": [f"demo-grpo-rank1-k10-s{s}"] for s in (0, 1)}
    report = json.loads(json.dumps(claims_tables.collect(Cache(cache), boards)))  # what the results file holds
    text = claims_tables.markdown("seeds", report)
    assert text.startswith(claims_tables.markers("seeds")[0]) and text.count("\n| **") == 12
    u1 = next(line for line in text.splitlines() if line.startswith("| **u1-demo-grpo-rank1-k10**"))
    values = [r["value"] for b in report["runs"].values() for r in b if r["claim_id"].startswith("u1-")]
    assert f"{sum(values) / 2:.3f} [" in u1 and "/2" in u1 and "Run 'demo-grpo-rank1-k10' finds" in u1
    one = claims_tables.markdown("one", {"runs": {"demo-grpo-s0": report["runs"]["demo-grpo-s0"]}})
    assert "Run 'demo-grpo-s0' at step 20" in one and one.count("\n| **") == 12


@pytest.mark.slow
@needs_browser
def test_the_compared_claims_board_renders_in_chromium(compared, tmp_path) -> None:
    cells = ["[data-testid^=glide-cell] >> text=u1-demo-grpo-rank1-k10-s0", "[data-testid^=glide-cell] >> text=zhu-2"]
    page_texts(compared[0], "claims?run=demo-grpo-s0", cells, tmp_path / "claims.png")


def test_seed_families_need_two_seeds(tmp_path, cli) -> None:
    from rlvr_core.fixtures import ModelShape, build_run

    fx = build_run(tmp_path / "d", ModelShape(n_layers=1), steps=(10,))
    common = ("--base", fx.base_dir, "--cache", tmp_path / "c", "--quiet", "--no-fits")
    for run in ("exp-s0", "exp-s1", "lonely-s3", "plain"):
        assert cli("analyze", fx.run_dir, "--run", run, *common)[0] == 0
    assert Cache(tmp_path / "c").queries().seed_families() == {"exp": ["exp-s0", "exp-s1"]}


def docs_text() -> str:
    """Every page of the docs site, one after the other."""
    return "".join(page.read_text() for page in sorted((ROOT / "docs").rglob("*.md")))


def test_the_docs_show_the_committed_multi_seed_results() -> None:
    report = json.loads((ROOT / "results" / "demo-seeds.json").read_text())
    assert report["summary"]["n_seeds"] >= 5 and sorted(report["summary"]["decoupling"], key=int) == ["10", "25", "50"]
    readme = docs_text()
    assert embedded(readme) == markdown(report), "regenerate: python -m rlvr_core.demo.seeds_tables"
    assert "results/demo-seeds.json" in readme


def test_the_docs_show_the_committed_claims_boards() -> None:
    boards = sorted((ROOT / "results").glob("claims-*.json"))
    assert "claims-demo-seeds" in [b.stem for b in boards]
    readme = docs_text()
    for path in boards:
        name = path.stem.removeprefix("claims-")
        assert claims_tables.embedded(name, readme) == claims_tables.markdown(name, json.loads(path.read_text()))
