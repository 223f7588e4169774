"""The docs stay true to the code: the package map lists every subpackage, each subpackage imports only
what its docstring allows, the docs' flag and settings tables match the parsers and the settings
dataclasses, no SQL or cache path is spelled outside the cache, and the dashboard never imports torch
(its module list derived from the code)."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rlvr_core
from rlvr_core.cli import build_parser
from rlvr_core.system import settings as settings_module

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rlvr_core"
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(page.read_text() for page in sorted((ROOT / "docs").rglob("*.md")))
"""The README and every page of the docs site: the flag and settings tables may sit on any of them."""
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))

ALLOWED = {  # subpackage -> the rlvr_core subpackages (and top-level modules) it may import
    "system": {"errors"},
    "readers": {"errors", "system", "math"},  # math: math.arithmetic, the built-in evaluation set
    "math": {"errors"},
    "cache": {"errors", "system"},
    "pipelines": {"errors", "system", "readers", "math", "cache"},
    "training": {"errors", "readers", "math"},
    "demo": {"errors", "system", "readers", "math", "cache", "pipelines", "training"},
    "service": {"errors", "system", "readers", "cache"},
    "cli": {"errors", "system", "readers", "math", "cache", "pipelines", "training", "demo", "service", "report"},
    "fixtures": {"errors", "readers", "math", "demo"},
    "report": {"errors", "system", "math", "cache"},
}


def _imports(file: Path) -> set[str]:
    """The rlvr_core subpackages a module imports (top-level or inside functions)."""
    tree, package = ast.parse(file.read_text()), file.relative_to(ROOT).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts + [a.name] for a in node.names] if not node.module else [parts]
            else:
                names = [(node.module or "").split(".")]
            found |= {n[1] for n in names if len(n) > 1 and n[0] == "rlvr_core"}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("rlvr_core.")}
    return found


def test_the_package_map_lists_every_subpackage_and_each_says_what_it_may_import():
    doc = rlvr_core.__doc__ or ""
    assert sorted(ALLOWED) == SUBPACKAGES
    for name in SUBPACKAGES:
        assert f"- `{name}`" in doc, f"rlvr_core/__init__.py's package map does not list {name}"
        sub_doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
        assert "May import" in sub_doc, f"rlvr_core/{name}/__init__.py does not say what it may import"


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_each_subpackage_imports_only_what_it_may(name):
    for file in sorted((PACKAGE / name).rglob("*.py")):
        used = _imports(file) - {name, "__version__"}
        assert used <= ALLOWED[name], f"{file.relative_to(ROOT)} imports {sorted(used - ALLOWED[name])}"


def test_no_sql_and_no_cache_path_outside_the_cache():
    pattern = re.compile(
        r"\b(SELECT|INSERT|UPDATE|CREATE)\s+\w|\.parquet|jobs\.sqlite|\bstep-\{|\"evals\"|\"variants\""
    )
    offenders = []
    for file in sorted(list(PACKAGE.rglob("*.py")) + list((ROOT / "rlvr_dashboard").rglob("*.py")) + [ROOT / "app.py"]):
        if file.is_relative_to(PACKAGE / "cache"):
            continue
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith(("#", '"', "-", "<", "`", "|")):
                offenders.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def _readme_table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after `heading` (in the README or a docs page)."""
    text = DOCS[DOCS.index(heading) :]
    lines = [line for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.parametrize(
    "command, heading",
    [
        ("analyze", "All flags of `rlvr analyze`"),
        ("watch", "All flags of `rlvr watch`"),
        ("compare", "All flags of `rlvr compare`"),
        ("demo", "All flags of `rlvr demo`"),
    ],
)
def test_readme_flag_tables_match_the_parsers(command, heading):
    _, parsers = build_parser()
    parser = parsers[command]
    documented = {re.match(r"`([^` ]+)", row[0]).group(1) for row in _readme_table(heading)}
    actual = {a.option_strings[0] if a.option_strings else a.dest.upper() for a in parser._actions if a.dest != "help"}
    assert documented == actual
    for row in _readme_table(heading):
        flag = re.match(r"`([^` ]+)", row[0]).group(1)
        action = next(a for a in parser._actions if flag in a.option_strings or flag == a.dest.upper())
        if action.default not in (None, False, []) and action.option_strings:
            assert str(action.default) in row[2], (flag, action.default, row[2])


def test_readme_settings_table_matches_the_settings_dataclasses():
    rows = _readme_table("### Settings")
    keys = {}
    for cls, prefix in (
        (settings_module.Settings, ""),
        (settings_module.AuthSettings, "auth."),
        (settings_module.ServerSettings, "server."),
    ):
        for f in dataclasses.fields(cls):
            if f.name not in ("auth", "server"):
                keys[prefix + f.name] = f
    documented = {row[0].strip("`"): row for row in rows}
    assert set(documented) == set(keys)
    env = {".".join(filter(None, where)): var for var, where in settings_module._ENV.items()}
    for key, row in documented.items():
        assert row[1].startswith(f"`{env[key]}`"), (key, row[1])


@pytest.mark.slow
def test_the_dashboard_never_imports_torch(tmp_path, run_fixture):
    """Every page runs (AppTest) on a cache holding an analysed run, in a fresh process whose own imports are
    the modules app.py and the pages import (read from their source): torch must never be loaded."""
    from rlvr_core.cli import main

    cache = tmp_path / "cache"
    assert (
        main(
            ["analyze", str(run_fixture.run_dir), "--base", str(run_fixture.base_dir), "--cache", str(cache), "--quiet"]
        )
        == 0
    )
    files = [ROOT / "app.py"] + sorted((ROOT / "rlvr_dashboard").rglob("*.py"))
    modules = sorted({m for f in files for m in _module_names(f)})
    assert "rlvr_core.cache.queries" in modules and "rlvr_dashboard.ui" in modules
    pages = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "rlvr_dashboard" / "views").glob("*.py"))]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"for page in {pages!r}:\n"
        f"    at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=60); at.switch_page(page).run()\n"
        "    assert not at.exception, (page, at.exception)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**__import__("os").environ, "RLVR_CACHE": str(cache)},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _module_names(file: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.add("rlvr_dashboard" + (f".{node.module}" if node.module else ""))
    return names


def test_readme_test_command_is_what_ci_runs():
    block = README[README.index("Run the tests") :]
    command = block[block.index("```bash\n") + 8 : block.index("\n```", block.index("```bash\n"))]
    ci_line = command.replace("pip install -r", "pip install -q -r").replace(
        "pip install --no-deps", "pip install -q --no-deps"
    )
    ci_line = ci_line.split("&& ", 1)[1].split("&& ", 1)[1]  # CI makes its own venv
    assert ci_line in (ROOT / ".ci" / "run").read_text()


def test_readme_python_imports_resolve():
    """Every `from rlvr_core... import ...` line in the Python examples of the README and the docs imports."""
    lines = re.findall(r"^\s*(from rlvr_core[\w.]* import [\w, ]+)", DOCS, re.M)
    assert len(lines) >= 4
    code = "\n".join(line.strip() for line in lines)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def _config_classes():
    for file in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if (
                isinstance(node, ast.ClassDef)
                and node.name.endswith(("Config", "Settings"))
                and any("dataclass" in ast.unparse(d) for d in node.decorator_list)
            ):
                yield file, node


def test_config_dataclasses_are_keyword_only_with_a_docstring_per_field():
    found = list(_config_classes())
    assert len(found) >= 9
    for file, node in found:
        where = f"{file.relative_to(ROOT)}:{node.name}"
        assert any("kw_only=True" in ast.unparse(d) for d in node.decorator_list), where
        body = node.body
        for i, item in enumerate(body):
            if isinstance(item, ast.AnnAssign):
                following = body[i + 1] if i + 1 < len(body) else None
                documented = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                assert documented, f"{where}.{ast.unparse(item.target)} has no docstring"


def test_pages_import_only_the_dashboard_helpers_and_the_cache_query_api():
    allowed = ("rlvr_dashboard", "rlvr_core.cache.queries", "streamlit", "plotly", "numpy")
    for page in sorted((ROOT / "rlvr_dashboard" / "views").glob("*.py")):
        for name in _module_names(page):
            assert name.startswith(allowed), f"{page.name} imports {name}"


def test_the_docs_list_every_cache_view_with_its_columns_in_order() -> None:
    from rlvr_core.cache.schemas import RUN_SCHEMAS, SCHEMAS
    from rlvr_core.cache.schemas_eval import EVAL_SCHEMAS

    section = (ROOT / "docs" / "explanations" / "cache.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", section, re.M))
    for name, schema in (*SCHEMAS.items(), *RUN_SCHEMAS.items(), *EVAL_SCHEMAS.items()):
        assert name in rows, f"docs/explanations/cache.md's table lacks the view {name}"
        plain = re.sub(r"\([^)]*\)", "", rows[name]).split(": ")[0]  # columns without their descriptions
        listed = [c.strip() for c in plain.split(",")]
        positions = [listed.index(column) if column in listed else -1 for column in schema.names]
        assert -1 not in positions and positions == sorted(positions), (name, schema.names, rows[name])
