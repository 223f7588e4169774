"""`rlvr analyze` end to end on real tiny safetensors checkpoints, read back through the DuckDB views."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rlvr_core.cache.store import open_cache
from rlvr_core.fixtures import ModelShape, build_run, random_model, write_checkpoint

from .conftest import parquet_files


def test_planted_rank1_update_is_recovered(run_fixture, tmp_path, cli) -> None:
    cache = tmp_path / "cache"
    rc, out, err = cli("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--cache", cache)
    assert rc == 0, err
    assert "analysed steps [0, 10, 20]" in out
    con = open_cache(cache)
    rows = con.execute("SELECT tensor, sigma, u, v FROM vectors WHERE step = 20 AND k = 1").fetchall()
    assert len(rows) == len(run_fixture.planted) == 14
    for tensor, sigma, u, v in rows:
        pu, pv = run_fixture.planted[tensor]
        assert abs(float(np.dot(u, pu.numpy()))) > 0.999
        assert abs(float(np.dot(v, pv.numpy()))) > 0.999
        assert sigma == pytest.approx(run_fixture.sigma[20], rel=0.01)
    energy = con.execute("SELECT min(rank1_energy) FROM layers WHERE step = 20 AND target = 'dW'").fetchone()[0]
    assert energy > 0.99
    steps = con.execute("SELECT step, is_base, n_tensors FROM checkpoints ORDER BY step").fetchall()
    assert steps == [(0, True, 18), (10, False, 18), (20, False, 18)]
    # the base (step 0) has target W only; each step has W and dW for each of the 14 linear tensors
    counts = con.execute("SELECT step, target, count(*) FROM layers GROUP BY ALL ORDER BY ALL").fetchall()
    assert counts == [(0, "W", 14), (10, "W", 14), (10, "dW", 14), (20, "W", 14), (20, "dW", 14)]


def test_view_columns_are_the_contract(run_fixture, tmp_path, cli) -> None:
    cache = tmp_path / "cache"
    cli("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--cache", cache, "--steps", "20")
    con = open_cache(cache)
    expected = {
        "checkpoints": ["run", "step", "path", "fingerprint", "n_tensors", "analyzed_at"],
        "layers": [
            "run",
            "step",
            "tensor",
            "layer",
            "module",
            "rows",
            "cols",
            "target",
            "fro_norm",
            "spectral_norm",
            "stable_rank",
            "rank1_energy",
        ],
        "spectra": ["run", "step", "tensor", "target", "sv"],
        "vectors": ["run", "step", "tensor", "k", "sigma", "u", "v"],
    }
    for view, columns in expected.items():
        described = con.execute(f"DESCRIBE {view}").fetchall()
        assert [d[0] for d in described[: len(columns)]] == columns
    types = {d[0]: d[1] for d in con.execute("DESCRIBE vectors").fetchall()}
    assert types["u"] == "FLOAT[]" and types["v"] == "FLOAT[]"
    assert dict(con.execute("DESCRIBE spectra").fetchall()[i][:2] for i in range(5))["sv"] == "DOUBLE[]"
    sv = con.execute("SELECT sv FROM spectra WHERE target = 'dW' LIMIT 1").fetchone()[0]
    assert sv == sorted(sv, reverse=True)
    # an empty cache still has every view, with the same columns
    empty = open_cache(tmp_path / "nothing")
    assert [d[0] for d in empty.execute("DESCRIBE layers").fetchall()][:12] == expected["layers"]
    assert empty.execute("SELECT count(*) FROM vectors").fetchone()[0] == 0


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("shards", [1, 3])
def test_dtypes_and_sharding_read_the_stored_values(tmp_path, cli, dtype, shards) -> None:
    fx = build_run(tmp_path / "d", ModelShape(n_layers=1), steps=(4,), dtype=dtype, shards=shards)
    cache = tmp_path / "cache"
    rc, _, err = cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--modules", "q_proj")
    assert rc == 0, err
    con = open_cache(cache)
    sv = con.execute("SELECT sv FROM spectra WHERE step = 4 AND target = 'W'").fetchone()[0]
    from safetensors import safe_open

    stored = {}
    for f in fx.step_dirs[4].glob("*.safetensors"):
        with safe_open(str(f), "pt") as h:
            if "model.layers.0.self_attn.q_proj.weight" in h.keys():
                stored = h.get_tensor("model.layers.0.self_attn.q_proj.weight")
    ref = np.linalg.svd(stored.double().numpy(), compute_uv=False)
    np.testing.assert_allclose(sv, ref, rtol=1e-6)
    assert con.execute("SELECT DISTINCT dtype FROM layers").fetchone()[0] == dtype.upper().replace("FP", "F")


def test_gpt2_conv1d_weights_are_analysed_out_by_in(tmp_path, cli) -> None:
    fx = build_run(tmp_path / "d", ModelShape(arch="gpt2", n_layers=1, hidden=16, intermediate=48), steps=(8,))
    cache = tmp_path / "cache"
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache)[0] == 0
    con = open_cache(cache)
    shapes = dict(
        (
            (m, (r, c))
            for m, r, c in con.execute(
                "SELECT module, rows, cols FROM layers WHERE step = 8 AND target = 'dW'"
            ).fetchall()
        )
    )
    assert shapes == {"attn.c_attn": (48, 16), "attn.c_proj": (16, 16), "mlp.c_fc": (48, 16), "mlp.c_proj": (16, 48)}
    (u,) = con.execute(
        "SELECT u FROM vectors WHERE tensor = 'h.0.attn.c_attn.weight' AND k = 1 AND target = 'dW'"
    ).fetchone()
    assert len(u) == 48 and abs(np.dot(u, fx.planted["h.0.attn.c_attn.weight"][0].numpy())) > 0.999


def test_neox_names_are_analysed(tmp_path, cli) -> None:
    fx = build_run(tmp_path / "d", ModelShape(arch="neox", n_layers=2), steps=(3,), layout="openrlhf")
    cache = tmp_path / "cache"
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache)[0] == 0
    modules = {m for (m,) in open_cache(cache).execute("SELECT DISTINCT module FROM layers").fetchall()}
    assert modules == {"attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"}


def test_untouched_tensor_has_zero_update_not_nan(tmp_path, cli) -> None:
    name = "model.layers.0.self_attn.k_proj.weight"
    fx = build_run(tmp_path / "d", ModelShape(n_layers=1), steps=(5,), untouched=(name,))
    cache = tmp_path / "cache"
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache)[0] == 0
    con = open_cache(cache)
    row = con.execute(
        "SELECT fro_norm, spectral_norm, stable_rank, rank1_energy FROM layers WHERE tensor = ? AND target = 'dW'",
        [name],
    ).fetchone()
    assert row == (0.0, 0.0, 0.0, 0.0)
    sv = con.execute("SELECT sv FROM spectra WHERE tensor = ? AND target = 'dW'", [name]).fetchone()[0]
    assert sv == [0.0] * 16
    assert con.execute("SELECT count(*) FROM vectors WHERE tensor = ? AND target = 'dW'", [name]).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM layers WHERE isnan(fro_norm) OR isnan(rank1_energy)").fetchone()[0] == 0


def test_embeddings_only_on_request(run_fixture, tmp_path, cli) -> None:
    cache = tmp_path / "cache"
    cli(
        "analyze",
        run_fixture.run_dir,
        "--base",
        run_fixture.base_dir,
        "--cache",
        cache,
        "--steps",
        "10",
        "--include-embeddings",
        "--no-base",
    )
    con = open_cache(cache)
    kinds = con.execute("SELECT kind, count(*) FROM layers WHERE target = 'W' GROUP BY 1 ORDER BY 1").fetchall()
    assert kinds == [("embedding", 1), ("linear", 14), ("lm_head", 1)]
    labelled = con.execute("SELECT kind, analyzed FROM tensors WHERE tensor LIKE '%layernorm%'").fetchall()
    assert labelled and all(k == "vector" and not a for k, a in labelled)


@pytest.mark.slow
def test_rerun_skips_and_a_changed_checkpoint_is_recomputed(run_fixture, tmp_path, cli) -> None:
    cache = tmp_path / "cache"
    args = ("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--cache", cache)
    assert cli(*args)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in parquet_files(cache)}
    rc, out, _ = cli(*args)
    assert rc == 0 and "analysed steps none" in out and "skipped (cached, unchanged) [0, 10, 20]" in out
    assert {p: p.stat().st_mtime_ns for p in parquet_files(cache)} == before
    # rewrite step 20 with a different update: only step 20 is recomputed
    weights = random_model(ModelShape(arch="llama"), seed=0)
    write_checkpoint(run_fixture.step_dirs[20], weights, "bf16", 2)
    rc, out, _ = cli(*args)
    assert "analysed steps [20]" in out and "skipped (cached, unchanged) [0, 10]" in out
    con = open_cache(cache)
    assert con.execute("SELECT max(fro_norm) FROM layers WHERE step = 20 AND target = 'dW'").fetchone()[0] == 0.0
    assert con.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 3


def test_runs_lists_runs_and_steps(run_fixture, tmp_path, cli) -> None:
    cache = tmp_path / "cache"
    rc, _, err = cli("runs", "--cache", cache)  # a mistyped --cache is an error, not "no runs"
    assert rc == 2 and "no such folder" in err
    cache.mkdir()
    rc, out, _ = cli("runs", "--cache", cache)
    assert rc == 0 and "no runs cached" in out
    cli("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--cache", cache, "--run", "grpo-a")
    rc, out, _ = cli("runs", "--cache", cache)
    assert "grpo-a" in out and "steps 0,10,20" in out


def test_cache_from_environment(run_fixture, tmp_path, cli, monkeypatch) -> None:
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "envcache"))
    assert cli("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--steps", "10")[0] == 0
    assert (tmp_path / "envcache" / "runs" / "run" / "step-10" / "layers.parquet").is_file()


@pytest.mark.slow
def test_console_entry_point_runs(run_fixture, tmp_path) -> None:
    """The real entry point (`python -m rlvr_core`) in a fresh process, as a user runs it."""
    env = dict(os.environ, RLVR_CACHE=str(tmp_path / "c"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlvr_core",
            "analyze",
            str(run_fixture.run_dir),
            "--base",
            str(run_fixture.base_dir),
            "--steps",
            "20",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 tensor" not in proc.stdout and "analysed steps [0, 20]" in proc.stdout
    assert "28/28" in proc.stderr  # the progress bar: tensors done of total
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr_core", "analyze", "/nonexistent", "--base", "/x"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: /nonexistent: expected a run folder")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_device_gives_the_cpu_numbers(run_fixture, tmp_path, cli) -> None:
    for device in ("cpu", "cuda"):
        rc, _, err = cli(
            "analyze",
            run_fixture.run_dir,
            "--base",
            run_fixture.base_dir,
            "--cache",
            tmp_path / device,
            "--device",
            device,
        )
        assert rc == 0, err
    q = "SELECT tensor, target, sv FROM spectra ORDER BY step, tensor, target"
    cpu, gpu = open_cache(tmp_path / "cpu").execute(q).fetchall(), open_cache(tmp_path / "cuda").execute(q).fetchall()
    assert len(cpu) == len(gpu)
    for a, b in zip(cpu, gpu):
        a_sv, b_sv = np.array(a[2]), np.array(b[2])
        resolvable = a_sv >= 1e-4 * a_sv[0]  # the documented precision limit of the Gram route
        np.testing.assert_allclose(b_sv[resolvable], a_sv[resolvable], rtol=1e-6)
        np.testing.assert_allclose(b_sv, a_sv, rtol=0, atol=1e-9 * a_sv[0])
    q = "SELECT u FROM vectors WHERE k = 1 ORDER BY step, tensor, target"
    for (a,), (b,) in zip(
        open_cache(tmp_path / "cpu").execute(q).fetchall(), open_cache(tmp_path / "cuda").execute(q).fetchall()
    ):
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_dead_writers_leftovers_are_cleaned_and_lookalikes_kept(run_fixture, tmp_path, cli) -> None:
    from rlvr_core.cache.atomic import WRITER_FILE

    run_dir = tmp_path / "cache" / "runs" / "run"
    dead, lookalike = run_dir / ".tmp-step-20-dead0000", run_dir / ".tmp-step-10-1ee70000"
    for folder in (dead, lookalike):
        folder.mkdir(parents=True)
        (folder / "layers.parquet").write_bytes(b"partial")
    (dead / WRITER_FILE).write_text("RLVR Lens tmp folder step-20-dead0000\n")  # a killed writer's own
    past = time.time() - 30 * 24 * 3600
    os.utime(lookalike, (past, past))  # old, but nothing proves the tool made it
    assert (
        cli(
            "analyze",
            run_fixture.run_dir,
            "--base",
            run_fixture.base_dir,
            "--cache",
            tmp_path / "cache",
            "--steps",
            "20",
            "--no-fits",
        )[0]
        == 0
    )
    assert not dead.exists() and (lookalike / "layers.parquet").read_bytes() == b"partial"
    assert open_cache(tmp_path / "cache").execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 2


@pytest.mark.parametrize("topk", ["1", "0"])
def test_topk_one_and_none(run_fixture, tmp_path, cli, topk) -> None:
    cache = tmp_path / "cache"
    rc, _, err = cli(
        "analyze",
        run_fixture.run_dir,
        "--base",
        run_fixture.base_dir,
        "--cache",
        cache,
        "--topk",
        topk,
        "--steps",
        "20",
        "--no-fits",
    )
    assert rc == 0, err
    con = open_cache(cache)
    n = con.execute("SELECT count(*), max(k) FROM vectors WHERE target = 'dW'").fetchone()
    assert n == ((14, 1) if topk == "1" else (0, None))
