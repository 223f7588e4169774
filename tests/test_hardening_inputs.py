"""Hostile inputs, round two (issue 30): inputs bounded before they are trusted, settings that fail closed,
limits that hold, watches that survive the trainer, and text that stays text on pages and in figures. Each
test reproduces one finding of the second hostile test and failed on the code before its fix."""

from __future__ import annotations

import os
import time

import pytest

from .test_hardening import one_line_error


@pytest.mark.parametrize(
    ("env", "toml", "fragment"),
    [
        ({"RLVR_DATA_ROOTS": ""}, "", "data_roots"),
        ({"RLVR_DATA_ROOTS": "::"}, "", "data_roots"),
        ({}, 'data_roots = [""]\n', "data_roots"),
        ({}, 'data_roots = ["relative/models"]\n', "data_roots"),
        ({}, "max_queued_per_user = -5\n", "max_queued_per_user"),
        ({}, "[server]\nport = 99999999\n", "port"),
        ({}, '[auth]\nmode = "header"\nheader = ""\n', "header"),
        ({"RLVR_PORT": "0"}, "", "port"),
    ],
)
def test_settings_fail_closed(tmp_path, cli, monkeypatch, env, toml, fragment) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "rlvr.toml"
    config.write_text(toml)
    rc, _, err = cli("runs", "--config", config, "--cache", tmp_path / "cache")
    one_line_error(rc, err, fragment)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("kind", ["folder", "not-utf8", "fifo"])
def test_a_bad_settings_file_is_one_line_and_one_notice_on_every_page(tmp_path, cli, monkeypatch, kind) -> None:
    from streamlit.testing.v1 import AppTest

    config = tmp_path / "rlvr.toml"
    if kind == "folder":
        config.mkdir()
    elif kind == "fifo":
        os.mkfifo(config)
    else:
        config.write_bytes(b'cache = "caf\xe9"\n')
    rc, _, err = cli("runs", "--config", config, "--cache", tmp_path / "cache")
    one_line_error(rc, err, str(config))
    monkeypatch.setenv("RLVR_CONFIG", str(config))
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    app = os.path.join(os.path.dirname(__file__), "..", "app.py")
    for page in ("runs", "layers", "jobs"):
        at = AppTest.from_file(app, default_timeout=60)
        at.switch_page(f"rlvr_dashboard/views/{page}.py").run()
        assert not at.exception, page
        assert [e.value for e in at.error] and str(config) in at.error[0].value, page
        assert len(at.error) == 1 and not at.title, page


@pytest.mark.parametrize("given", ["folder", "file"])
def test_a_fifo_named_like_a_log_is_refused_not_waited_on(tmp_path, cli, given) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "trainer_state.json")
    path = run if given == "folder" else run / "trainer_state.json"
    rc, _, err = cli("logs", path, "--run", "r", "--cache", tmp_path / "cache")
    one_line_error(rc, err, "trainer_state.json" if given == "file" else "none")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.parquet"))


def test_a_fifo_config_json_beside_the_weights_does_not_hang(run_fixture, tmp_path, cli) -> None:
    fx = run_fixture
    (fx.step_dirs[10] / "config.json").unlink()
    os.mkfifo(fx.step_dirs[10] / "config.json")
    argv = ("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", tmp_path / "c", "--steps", "10", "--no-fits")
    rc, _, err = cli(*argv)
    assert rc == 0, err  # the config only tells fused layouts apart: a dense checkpoint is read without it


@pytest.mark.parametrize(
    "argv",
    [
        ("analyze", "--pair", "{step}", "--base", "{base}", "--step", "99999999999999999999"),
        ("analyze", "--pair", "{step}", "--base", "{base}", "--step", "\uff12"),
        ("predict", "r", "--from-step", "1", "--to-step", "9223372036854775808"),
    ],
)
def test_huge_or_unicode_steps_are_refused_by_the_parser(run_fixture, tmp_path, cli, argv) -> None:
    fill = {"step": str(run_fixture.step_dirs[10]), "base": str(run_fixture.base_dir)}
    with pytest.raises(SystemExit) as stop:  # argparse's own usage error: exit 2, no traceback
        cli(*(a.format(**fill) for a in argv), "--cache", tmp_path / "c")
    assert stop.value.code == 2 and not (tmp_path / "c").exists()


def test_analyze_refuses_a_run_folder_beside_pair(run_fixture, tmp_path, cli) -> None:
    fx = run_fixture
    argv = ("analyze", fx.run_dir, "--pair", fx.step_dirs[10], "--base", fx.base_dir, "--cache", tmp_path / "c")
    rc, _, err = cli(*argv)
    one_line_error(rc, err, "--pair", "RUN_DIR")
    assert not (tmp_path / "c").exists()


def test_watches_and_the_jobs_they_queue_count_against_the_per_user_limit(tmp_path, cli, monkeypatch) -> None:
    from rlvr_core.cache import queue as jobs
    from rlvr_core.cache import watches
    from rlvr_core.fixtures import ModelShape, build_run
    from rlvr_core.service.watcher import run_watcher

    fx = build_run(tmp_path / "fx", ModelShape(n_layers=1), steps=(10,))
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_MAX_QUEUED", "3")
    registered = []
    for n in range(8):  # the hostile test registered 8 with a limit of 3
        argv = (
            "--submitted-by",
            "mallory",
            "watch",
            fx.run_dir,
            "--base",
            fx.base_dir,
            "--run",
            f"w{n}",
            "--settle",
            "0",
        )
        rc, out, err = cli("submit", *argv, "--cache", cache)
        if rc == 0:
            registered.append(n)
        else:
            one_line_error(rc, err, "mallory", "at most 3 watched runs")
    assert registered == [0, 1, 2]
    jobs.submit(cache, "logs", ["x.jsonl", "--run", "other"], submitted_by="mallory")  # one job already waiting
    said: list[str] = []
    until = time.monotonic() + 3
    run_watcher(cache, lambda: time.monotonic() > until, said.append, tick=0.2, max_per_user=3)
    waiting = [j for j in jobs.list_jobs(cache) if j.submitted_by == "mallory" and j.state == "queued"]
    assert len(waiting) == 3, [j.argv for j in waiting]  # the watcher stopped at the limit
    assert any("at most 3 jobs" in line for line in said), said
    assert {w.run for w in watches.list_watches(cache)} == {"w0", "w1", "w2"}


EVIL = "model.layers.0.mlp.<a href='https://evil.example/'>click</a><b>x</b>.weight"


def test_plain_escapes_every_text_but_the_tools_own_templates() -> None:
    import numpy as np
    import plotly.graph_objects as go

    from rlvr_core.report.plain import plain

    trace = go.Scatter(x=np.array(["<b>q</b>", "k"], dtype=object), y=[1, 2], name="<a href='x'>n</a>",
                       customdata=[["<i>c</i>"], ["d"]], hovertemplate="%{x}<extra></extra>")  # fmt: skip
    figure = go.Figure(trace, layout={"title": {"text": "<a href='x'>t</a>"}})
    figure.add_annotation(text="<br>note")
    made = plain(figure)
    data = made.data[0]
    assert data.name == "&lt;a href='x'&gt;n&lt;/a&gt;" and list(data.x) == ["&lt;b&gt;q&lt;/b&gt;", "k"]
    assert data.customdata[0][0] == "&lt;i&gt;c&lt;/i&gt;" and data.hovertemplate == "%{x}<extra></extra>"
    assert made.layout.title.text.startswith("&lt;a") and made.layout.annotations[0].text == "&lt;br&gt;note"
    assert figure.data[0].name == "<a href='x'>n</a>"  # the figure as built is left as it was
    broken = plain(go.Figure(layout={"title": {"text": "a long title\n<b>its second line</b>"}}))
    assert broken.layout.title.text == "a long title<br>&lt;b&gt;its second line&lt;/b&gt;"  # a newline breaks


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="apt-get install chromium")
def test_a_tensor_named_like_a_link_is_drawn_as_text_in_exported_figures(tmp_path, cli) -> None:
    import xml.etree.ElementTree as ET

    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    base = {EVIL: torch.randn(8, 6, generator=gen), "model.layers.0.self_attn.q_proj.weight": torch.randn(6, 6)}
    for folder, scale in (("base", 0.0), ("run/checkpoint-1", 0.01), ("run/checkpoint-2", 0.02)):
        (tmp_path / folder).mkdir(parents=True)
        save_file(
            {k: v + scale * torch.ones_like(v) for k, v in base.items()}, str(tmp_path / folder / "w.safetensors")
        )
        (tmp_path / folder / "w.safetensors").rename(tmp_path / folder / "model.safetensors")
    cache = tmp_path / "cache"
    assert cli("analyze", tmp_path / "run", "--base", tmp_path / "base", "--cache", cache, "--quiet")[0] == 0
    svg = tmp_path / "alpha.svg"
    rc, _, err = cli("figure", "run", "--kind", "sigma1-over-steps", "--out", svg, "--cache", cache)
    assert rc == 0, err
    root = ET.fromstring(svg.read_bytes())
    assert not [e for e in root.iter() if e.tag.endswith("}a") or e.tag == "a"]  # no link element anywhere
    texts = "".join(t.text or "" for t in root.iter() if t.tag.endswith("text") or t.tag.endswith("tspan"))
    assert "<a href='https://evil.example/'>" in texts or "click</a>" in texts, texts[:400]


def test_watch_retries_a_transient_error_and_reports_a_vanished_folder_and_broken_links_once(tmp_path, monkeypatch):
    from rlvr_core.fixtures import ModelShape, build_run
    from rlvr_core.pipelines import watch as w

    fx = build_run(tmp_path / "fx", ModelShape(n_layers=1), steps=(10,))
    config = w.WatchConfig(run_dir=fx.run_dir, base=fx.base_dir, run="r", cache=tmp_path / "c", settle=0, fits=False)
    state, said = w.WatchState(), []
    real, calls = w._analyse, []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 1:  # the trainer rewrote the folder while it was read
            raise FileNotFoundError(2, "No such file or directory", str(fx.step_dirs[10] / "model.safetensors"))
        return real(*args)

    monkeypatch.setattr(w, "_analyse", flaky)
    os.symlink(tmp_path / "nowhere", fx.run_dir / "checkpoint-30")
    os.symlink("checkpoint-40", fx.run_dir / "checkpoint-40")  # a loop
    for _ in range(3):
        w.poll(config, state, lambda: False, said.append)
    assert state.analysed[10] > 0 and len(calls) == 2, said  # failed once, analysed at the next look
    assert any("try 1 of 3, tried again" in line for line in said)
    assert sum("checkpoint-30: a link to" in line and "does not exist" in line for line in said) == 1, said
    assert sum("checkpoint-40: a loop of links" in line for line in said) == 1, said
    fx.run_dir.rename(tmp_path / "moved")
    for _ in range(3):
        w.poll(config, state, lambda: False, said.append)
    assert sum("is gone (moved or deleted)" in line for line in said) == 1, said
    (tmp_path / "moved").rename(fx.run_dir)
    w.poll(config, state, lambda: False, said.append)
    assert said[-1].endswith("is back") or any(line.endswith("is back") for line in said)


def test_watch_gives_up_on_a_step_after_its_tries(tmp_path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from rlvr_core.fixtures import ModelShape, build_run
    from rlvr_core.pipelines import watch as w

    fx = build_run(tmp_path / "fx", ModelShape(n_layers=1), steps=(10,))
    shard = sorted(fx.step_dirs[10].glob("*.safetensors"))[0]
    tensors = load_file(str(shard))
    name = next(n for n in tensors if n.endswith("proj.weight"))
    tensors[name] = torch.full_like(tensors[name], float("nan"))  # a bad checkpoint, not a transient error
    save_file(tensors, str(shard), metadata={"format": "pt"})
    config = w.WatchConfig(run_dir=fx.run_dir, base=fx.base_dir, run="r", cache=tmp_path / "c", settle=0, fits=False)
    state, said = w.WatchState(), []
    for _ in range(5):
        w.poll(config, state, lambda: False, said.append)
    assert state.analysed[10] == -1.0 and state.failures[10] == w.MAX_TRIES
    assert [line for line in said if "error (try" in line][-1].count("given up") == 1


def test_runs_page_a_nul_byte_is_one_message_and_a_relative_base_is_a_folder(tmp_path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from rlvr_core.cache import queue as jobs
    from rlvr_core.fixtures import ModelShape, build_run

    root = tmp_path / "models"
    fx = build_run(root / "legit", ModelShape(n_layers=1), steps=(10,))
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    monkeypatch.setenv("RLVR_DATA_ROOTS", str(root))
    monkeypatch.setenv("RLVR_ALLOW_HUB", "1")
    app = os.path.join(os.path.dirname(__file__), "..", "app.py")
    at = AppTest.from_file(app, default_timeout=60).run()
    at.text_input(key="run_dir").set_value(str(fx.run_dir) + "\x00/etc")
    next(b for b in at.button if b.label == "Check").click().run()
    assert not at.exception and "NUL byte" in at.error[0].value
    at.text_input(key="run_dir").set_value(str(fx.run_dir))
    relative = str(fx.base_dir.relative_to(root))  # "legit/base": also the form of a Hub id
    at.text_input(key="base_dir").set_value(relative)
    next(b for b in at.button if b.label == "Queue the analysis").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = jobs.list_jobs(cache)
    assert str(fx.base_dir.resolve()) in job.argv and relative not in job.argv, job.argv
