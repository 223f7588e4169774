"""Hostile inputs, round two (issue 30), the writers' side: clean-up that proves ownership, single files
that carry the tool's mark, runs with an owner and a source, MoE variants rewritten per expert, cache files
checked against their schema. Each test reproduces one finding of the second hostile test and failed on
the code before its fix; bad input ends in one `error:` line (exit 2) with nothing changed."""

from __future__ import annotations

import io
import os
import time

import pytest

from rlvr_core.cache.atomic import OUTPUT_MARK, remove_leftovers
from rlvr_core.report.export import stamp

from .test_hardening import checksums, one_line_error

MONTH = 30 * 24 * 3600


def _age(folder, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(folder, (past, past))


def test_substitute_keeps_the_users_folders_that_look_like_leftovers(run_fixture, tmp_path, cli) -> None:
    fx, outs = run_fixture, tmp_path / "outs"
    backup, scratch = outs / ".old-backup-deadbeef", outs / ".tmp-notes-0123abcd"
    for folder in (backup, scratch):
        folder.mkdir(parents=True)
        (folder / "thesis.tex").write_text("six months of work")
        _age(folder, MONTH)
    (outs / ".lock-notes-0123abcd").write_text("")  # unlocked, like a dead writer's
    before = checksums(backup, scratch)
    rc, _, err = cli("substitute", fx.step_dirs[10], "--base", fx.base_dir, "--out", outs / "v1")
    assert rc == 0, err
    assert checksums(backup, scratch) == before and (outs / ".lock-notes-0123abcd").exists()
    assert (outs / "v1" / "rlvr_substitution.json").is_file()


def test_only_leftovers_whose_ownership_file_names_them_are_removed(tmp_path) -> None:
    from rlvr_core.cache.atomic import WRITER_FILE

    ours, forged, linked = tmp_path / ".old-out-deadbeef", tmp_path / ".tmp-out-0badc0de", tmp_path / ".tmp-x-00000000"
    for folder in (ours, forged):
        folder.mkdir()
        (folder / "data.bin").write_bytes(b"x")
    (ours / WRITER_FILE).write_text("RLVR Lens old folder out-deadbeef\n")
    (forged / WRITER_FILE).write_text("RLVR Lens tmp folder out-00000000\n")  # names another folder
    target = tmp_path / "precious"
    target.mkdir()
    (target / WRITER_FILE).write_text("RLVR Lens tmp folder x-00000000\n")
    linked.symlink_to(target)  # a link to a folder is never followed
    os.mkfifo(tmp_path / ".lock-out-0badc0de")  # a FIFO named like a lock must not hang the clean-up
    assert remove_leftovers(tmp_path) == [ours]
    assert forged.exists() and target.exists() and linked.is_symlink()


def test_report_refuses_a_file_it_did_not_write(run_fixture, tmp_path, cli, monkeypatch) -> None:
    fx, cache = run_fixture, tmp_path / "cache"
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--steps", "10", "--no-fits")[0] == 0
    shard = sorted(fx.step_dirs[10].glob("*.safetensors"))[0]
    parquet = next(cache.rglob("layers.parquet"))
    before = checksums(fx.step_dirs[10], cache)
    for out in (shard, parquet):
        rc, _, err = cli("report", "run", "--out", out, "--cache", cache)
        one_line_error(rc, err, str(out))
    assert checksums(fx.step_dirs[10], cache) == before
    rc, _, err = cli("report", "run", "--out", tmp_path, "--cache", cache)
    one_line_error(rc, err, "a folder")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run-report.html").write_text("my notes")  # the default name, not ours
    rc, _, err = cli("report", "run", "--cache", cache)
    one_line_error(rc, err, "run-report.html", "did not write")
    assert (tmp_path / "run-report.html").read_text() == "my notes"
    out = tmp_path / "new" / "r.html"
    for _ in range(2):  # its own earlier output is replaced
        rc, _, err = cli("report", "run", "--out", out, "--cache", cache)
        assert rc == 0, err
    assert OUTPUT_MARK in out.read_bytes()[:4096]


def test_figure_refuses_before_drawing(tmp_path, cli) -> None:
    cache = tmp_path / "cache"
    mine = tmp_path / "plot.svg"
    mine.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    rc, _, err = cli("figure", "run", "--kind", "alpha-over-steps", "--out", mine, "--cache", cache)
    one_line_error(rc, err, "plot.svg", "did not write")
    assert mine.read_text() == "<svg xmlns='http://www.w3.org/2000/svg'/>"


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_stamped_files_stay_valid() -> None:
    from PIL import Image

    png = stamp(_png(), "png")
    image = Image.open(io.BytesIO(png))
    image.load()  # checks every chunk's CRC
    assert image.info.get("Software") == OUTPUT_MARK.decode() and image.getpixel((2, 1)) == (10, 20, 30)
    assert OUTPUT_MARK in png[:4096]
    svg = stamp(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "svg")
    import xml.etree.ElementTree as ET

    assert ET.fromstring(svg).tag.endswith("svg") and OUTPUT_MARK in svg
    pdf = stamp(b"%PDF-1.4\n...\n%%EOF\n", "pdf")
    assert pdf.startswith(b"%PDF-1.4") and pdf.endswith(b"%" + OUTPUT_MARK + b"\n")


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_the_mark_is_found_in_a_stamped_file(tmp_path, fmt) -> None:
    from rlvr_core.cache.atomic import guard_output_file

    file = tmp_path / f"f.{fmt}"
    file.write_bytes(stamp(_png() if fmt == "png" else b"<svg/>", fmt))
    assert guard_output_file(file) == file.resolve()


def test_a_fused_tensor_beside_the_same_experts_stored_one_by_one_is_an_error(tmp_path, cli) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {
        "model.layers.0.mlp.experts.down_proj": torch.randn(2, 4, 6),
        "model.layers.0.mlp.experts.1.down_proj.weight": torch.randn(4, 6),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(4, 4),
    }
    for folder in ("base", "run/checkpoint-1"):
        (tmp_path / folder).mkdir(parents=True)
        save_file(tensors, str(tmp_path / folder / "model.safetensors"))
    rc, _, err = cli("analyze", tmp_path / "run", "--base", tmp_path / "base", "--cache", tmp_path / "c", "--no-fits")
    one_line_error(rc, err, "experts.1.down_proj.weight", "one stored tensor")
    assert not list((tmp_path / "c").rglob("*.parquet"))


def _fused_run(tmp_path, layout):
    """A fused-expert base and a run of steps 1 and 2 whose update is the planted sigma u v^T times the step."""
    import shutil

    from safetensors.torch import load_file, save_file

    from rlvr_core.fixtures.moe_fused import build_fused

    fx = build_fused(tmp_path / "fx", layout)
    base, step = load_file(str(fx.base_dir / "model.safetensors")), load_file(str(fx.step_dir / "model.safetensors"))
    for n in (1, 2):
        folder = tmp_path / "run" / f"checkpoint-{n}"
        shutil.copytree(fx.step_dir, folder)
        save_file({k: base[k] + n * (step[k] - base[k]) for k in base}, str(folder / "model.safetensors"))
    return fx


def _expert_matrices(folder):
    from rlvr_core.readers.checkpoint import Checkpoint

    ck = Checkpoint(folder)
    return {role.name: ck.read_matrix(role).double() for role, _ in ck.roles() if role.expert is not None}


@pytest.mark.parametrize("layout", ["gpt_oss", "qwen3_moe_fused"])
def test_substitute_and_predict_rewrite_fused_experts_one_by_one(tmp_path, cli, layout) -> None:
    """Written by transformers' own code (gpt-oss save_pretrained; Qwen3-MoE's fused state dict): each expert
    of a fused 3-D tensor gets its own rank-k update, read back through the layout the model's forward uses.
    (Before, both commands copied fused tensors unchanged: the variant kept the full update.)"""
    fx = _fused_run(tmp_path, layout)
    base = _expert_matrices(fx.base_dir)
    planted = fx.sigma * torch_outer(fx.u, fx.v)
    out = tmp_path / "half"
    rc, _, err = cli("substitute", fx.step_dir, "--base", fx.base_dir, "--out", out, "--alpha", "0.5")
    assert rc == 0, err
    for name, matrix in _expert_matrices(out).items():
        expected = base[name] + (0.5 * planted if name == fx.planted else 0)
        assert (matrix - expected).abs().max() < 1e-6, name
    cache = tmp_path / "cache"
    rc, _, err = cli("analyze", tmp_path / "run", "--base", fx.base_dir, "--cache", cache, "--no-fits", "--quiet")
    assert rc == 0, err
    rc, _, err = cli("predict", "run", "--from-step", "2", "--to-step", "4", "--out", tmp_path / "p4", "--cache", cache)
    assert rc == 0, err
    for name, matrix in _expert_matrices(tmp_path / "p4").items():  # sigma linear in the step: 4 sigma at step 4
        expected = base[name] + (4 * planted if name == fx.planted else 0)
        assert (matrix - expected).abs().max() < 1e-5, name


def torch_outer(u, v):
    return u.double()[:, None] * v.double()[None, :]


def test_predict_and_substitute_refuse_a_pattern_that_matches_nothing(run_fixture, tmp_path, cli) -> None:
    fx, cache = run_fixture, tmp_path / "cache"
    rc, _, err = cli("substitute", fx.step_dirs[10], "--base", fx.base_dir, "--out", tmp_path / "v", "--modules", "zzz")
    one_line_error(rc, err, "zzz")
    assert not (tmp_path / "v").exists()
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--no-fits", "--quiet")[0] == 0
    rc, _, err = cli("predict", "run", "--from-step", "20", "--to-step", "40", "--modules", "zzz", "--cache", cache)
    one_line_error(rc, err, "zzz")


def test_a_wrongly_typed_or_truncated_cache_file_is_broken_never_hiding_other_runs(
    run_fixture, tmp_path, cli, monkeypatch
):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from streamlit.testing.v1 import AppTest

    from rlvr_core.cache import open_cache

    fx, cache = run_fixture, tmp_path / "cache"
    for run in ("a", "b"):
        argv = ("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--run", run, "--no-fits", "--quiet")
        assert cli(*argv)[0] == 0
    layers = cache / "runs" / "a" / "step-10" / "layers.parquet"
    table = pq.read_table(layers)
    index = table.column_names.index("layer")
    pq.write_table(table.set_column(index, "layer", pa.array([f"L{v}" for v in table["layer"].to_pylist()])), layers)
    alignment = cache / "runs" / "b" / "alignment.parquet"
    alignment.write_bytes(alignment.read_bytes()[: alignment.stat().st_size // 2])
    rc, out, err = cli("runs", "--cache", cache)
    assert rc == 0, err
    assert "a\tBROKEN\tstep 10" in out and "b\tBROKEN\trun file" in out and out.count("step(s)") == 2
    broken = open_cache(cache).execute("SELECT run, step, error FROM broken ORDER BY run").fetchall()
    assert broken[0][:2] == ("a", 10) and "column 'layer' is string" in broken[0][2] and broken[1][:2] == ("b", None)
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    app = os.path.join(os.path.dirname(__file__), "..", "app.py")
    for page, run in (("layers", "a"), ("alignment", "b"), ("alignment", "a")):
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params["run"] = run
        at.switch_page(f"rlvr_dashboard/views/{page}.py").run()
        assert not at.exception, (page, run)
    for run in ("a", "b"):  # the next analysis repairs them
        argv = ("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--run", run, "--no-fits", "--quiet")
        assert cli(*argv)[0] == 0  # no --force: the broken step is found and analysed again
    assert open_cache(cache).execute("SELECT count(*) FROM broken").fetchone()[0] == 0


def test_runs_have_an_owner_and_a_source(run_fixture, tmp_path, cli, monkeypatch) -> None:
    import json
    import shutil

    from rlvr_core.pipelines.analyze import AnalyzeConfig, analyze_run
    from rlvr_core.readers.layout import discover_steps

    fx, cache = run_fixture, tmp_path / "cache"
    monkeypatch.setenv("RLVR_JOB_USER", "alice")
    argv = (
        "analyze",
        fx.run_dir,
        "--base",
        fx.base_dir,
        "--cache",
        cache,
        "--run",
        "alice-run",
        "--no-fits",
        "--quiet",
    )
    assert cli(*argv)[0] == 0
    step10 = cache / "runs" / "alice-run" / "step-10"
    before = checksums(step10)
    other = tmp_path / "elsewhere" / "model"  # other weights, same shapes
    shutil.copytree(fx.step_dirs[20], other)
    pair = ("analyze", "--pair", other, "--base", fx.base_dir, "--run", "alice-run", "--step", "10", "--cache", cache)
    rc, _, err = cli(*pair, "--no-fits", "--quiet")  # the hostile test's silent replacement of step 10
    one_line_error(rc, err, "alice-run", str(other.resolve()), "--force")
    assert checksums(step10) == before
    monkeypatch.setenv("RLVR_JOB_USER", "bob")
    rc, _, err = cli(*argv)  # another user, same folder
    one_line_error(rc, err, "a run of alice", "--force")
    shared = AnalyzeConfig(base=fx.base_dir, checkpoints=discover_steps(fx.run_dir), run="alice-run", cache=cache,
                           owner="bob", shared=True, force=True, fits=False)  # fmt: skip
    with pytest.raises(Exception, match="a run of alice") as refused:  # a job on a server: refused, even forced
        analyze_run(shared)
    assert "--force" not in str(refused.value) and checksums(step10) == before
    monkeypatch.setenv("RLVR_JOB_USER", "alice")
    assert cli(*pair, "--no-fits", "--quiet", "--force")[0] == 0  # the owner may add a source on purpose
    rc, out, _ = cli("runs", "--cache", cache, "--json")
    (entry,) = json.loads(out)
    assert entry["owner"] == "alice" and entry["sources"] == [str(fx.run_dir.resolve()), str(other.resolve())]
    assert checksums(step10) != before


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_a_published_checkpoint_is_as_readable_as_the_umask_allows(tmp_path, mask, expected) -> None:
    """safetensors writes its files 0600: the demo the Docker image's build (root) wrote could not be read by
    the service's user (uid 1000), so a rank-1 evaluation queued from the page failed in the container with
    "Permission denied: '/opt/rlvr/demo/base/model.safetensors'" (found by the container walk)."""
    import stat

    import torch
    from safetensors.torch import save_file

    from rlvr_core.cache.atomic import MARKER, publishing

    old = os.umask(mask)
    try:
        with publishing(tmp_path / "ckpt", marker=MARKER) as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))
            assert stat.S_IMODE((tmp / "model.safetensors").stat().st_mode) == 0o600  # safetensors' own mode
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ckpt" / "model.safetensors").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "ckpt").stat().st_mode) & 0o555 == 0o555 & ~mask
