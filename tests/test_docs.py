"""The docs site stays true to the code: the reference pages equal what `python -m rlvr_core.cli.docs`
generates from the parsers, the settings dataclasses, the cache schemas and the public API; every page is in
the site's navigation; `mkdocs build --strict` passes (no broken link or anchor); the README stays a front
door (≤ 150 lines) whose links all lead to a page; the package's extras are the ones the commands ask for."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rlvr_core.cli import NEEDS_EXTRA
from rlvr_core.cli.docs import PAGES, main, stale
from rlvr_core.system.extras import EXTRAS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_the_reference_pages_are_what_the_code_generates() -> None:
    assert stale(DOCS / "reference") == [], "regenerate: python -m rlvr_core.cli.docs"


def test_the_check_fails_on_a_page_that_drifted(tmp_path, capsys) -> None:
    assert main([str(tmp_path)]) == 0 and main(["--check", str(tmp_path)]) == 0
    page = tmp_path / "settings.md"
    page.write_text(page.read_text().replace("`RLVR_PORT`", "`RLVR_THE_PORT`"))
    assert main(["--check", str(tmp_path)]) == 1
    assert "settings.md: differs from the code" in capsys.readouterr().err


def test_the_cli_reference_lists_every_command_and_flag() -> None:
    from rlvr_core.cli import build_parser

    text = (DOCS / "reference" / "cli.md").read_text()
    for name, parser in build_parser()[1].items():
        assert f"## `rlvr {name}`" in text
        section = text.split(f"## `rlvr {name}`", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert f"`{action.option_strings[0]}" in section, (name, action.option_strings)


def test_every_page_is_in_the_navigation_and_every_nav_entry_is_a_page() -> None:
    nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert nav == pages
    assert {f"reference/{name}" for name in PAGES} <= nav


def test_mkdocs_builds_the_site_strictly(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()


def test_the_readme_is_a_front_door_whose_links_lead_somewhere() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert len(links) >= 20
    for link in links:
        assert link.startswith("http") or (ROOT / link).is_file(), link


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_declared_in_pyproject_is_one_a_command_can_ask_for(extra) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(declared) == set(EXTRAS) | {"all"}
    assert set(NEEDS_EXTRA.values()) | {"ray", "wandb"} == set(EXTRAS)
    pins = (ROOT / "requirements.txt").read_text().lower().replace("_", "-")
    for requirement in declared[extra]:
        name = re.split(r"[<>=\[]", requirement)[0].lower().replace("_", "-")
        assert name == "rlvr-lens" or f"\n{name}==" in pins or extra in ("ray", "wandb"), (extra, name)
