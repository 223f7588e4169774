"""Settings resolved once, the same way for every entry point: a TOML `cache` (given by --config or
$RLVR_CONFIG) is honoured by `rlvr runs`, `rlvr submit`, `rlvr worker` and `streamlit run app.py`, and a
flag beats the environment, which beats the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rlvr_core.cache import Cache
from rlvr_core.cache import queue as jobs
from rlvr_core.cli import main
from rlvr_core.fixtures import ModelShape, build_run
from rlvr_core.system.settings import load_settings

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def toml_cache(tmp_path, monkeypatch):
    """A config file naming a cache that holds one analysed run; $RLVR_CACHE and $RLVR_CONFIG unset."""
    monkeypatch.delenv("RLVR_CACHE", raising=False)
    monkeypatch.delenv("RLVR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # so the default ./cache would be somewhere else
    fx = build_run(tmp_path / "d", ModelShape(n_layers=1), steps=(10,))
    cache = tmp_path / "from-toml"
    config = tmp_path / "rlvr.toml"
    config.write_text(f'cache = "{cache}"\n')
    assert (
        main(
            [
                "analyze",
                str(fx.run_dir),
                "--base",
                str(fx.base_dir),
                "--config",
                str(config),
                "--run",
                "tomlrun",
                "--quiet",
                "--no-fits",
            ]
        )
        == 0
    )
    assert Cache(cache).queries().runs() == ["tomlrun"] and not (tmp_path / "cache").exists()
    return config, cache, fx


def test_precedence_is_flag_then_environment_then_file(tmp_path):
    config = tmp_path / "rlvr.toml"
    config.write_text('cache = "/file"\n[server]\nport = 9000\n')
    assert load_settings(config, environ={}).cache == "/file"
    assert load_settings(config, environ={"RLVR_CACHE": "/env"}).cache == "/env"
    assert load_settings(config, environ={"RLVR_CACHE": "/env"}, flags={"cache": "/flag"}).cache == "/flag"
    assert load_settings(config, environ={}, flags={"cache": None, "server.port": 7000}).server.port == 7000
    assert load_settings(None, environ={"RLVR_CONFIG": str(config)}).cache == "/file"


def test_rlvr_runs_reads_the_toml_cache(toml_cache, capsys, monkeypatch):
    config, _, _ = toml_cache
    assert main(["runs", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("tomlrun\t")
    monkeypatch.setenv("RLVR_CONFIG", str(config))
    assert main(["runs"]) == 0
    assert capsys.readouterr().out.startswith("tomlrun\t")


def test_rlvr_submit_and_worker_use_the_toml_cache(toml_cache, capsys, monkeypatch):
    config, cache, fx = toml_cache
    assert main(["submit", "--config", str(config), "logs", str(fx.run_dir / "checkpoint-10"), "--run", "x"]) == 0
    monkeypatch.setenv("RLVR_CONFIG", str(config))
    assert (
        main(
            [
                "submit",
                "analyze",
                str(fx.run_dir),
                "--base",
                str(fx.base_dir),
                "--run",
                "second",
                "--quiet",
                "--no-fits",
            ]
        )
        == 0
    )
    assert [j.kind for j in jobs.list_jobs(cache)] == ["analyze", "logs"]
    monkeypatch.delenv("RLVR_CONFIG")
    assert main(["worker", "--config", str(config), "--drain"]) == 0
    assert [j.state for j in jobs.list_jobs(cache)] == ["done", "failed"]  # the step folder holds no log
    assert Cache(cache).queries().runs() == ["second", "tomlrun"]


def test_the_dashboard_reads_the_toml_cache(toml_cache, monkeypatch):
    config, _, _ = toml_cache
    monkeypatch.setenv("RLVR_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.dataframe[0].value["run"].tolist() == ["tomlrun"]


def test_the_version_comes_from_one_place_and_rlvr_version_prints_it(capsys) -> None:
    import tomllib
    from importlib.metadata import version

    import rlvr_core

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]  # read from rlvr_core.__version__
    assert version("rlvr-lens") == rlvr_core.__version__  # what the install recorded
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"rlvr-lens {rlvr_core.__version__}\n"
    assert f"## {rlvr_core.__version__}" in (root / "CHANGELOG.md").read_text()
