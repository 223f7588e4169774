"""The engines of `rlvr analyze` (`pipelines.engines`): worker processes (which also fit) and batched
same-shape stacks give the same cache as the thread engine, on a dense run and on an MoE checkpoint with
fused experts; `auto` picks processes only for large steps; errors raised in a worker process arrive
whole; `spectral.decompose_batch` equals `decompose` matrix by matrix."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from rlvr_core.cache import Cache
from rlvr_core.errors import UsageError
from rlvr_core.fixtures.checkpoints import ModelShape, build_run, write_checkpoint
from rlvr_core.fixtures.moe_fused import build_fused
from rlvr_core.math import spectral
from rlvr_core.pipelines.engines import PROCESS_MIN_ELEMENTS, resolve_engine
from rlvr_core.readers.checkpoint import Checkpoint

QUERIES = {
    "layers": "SELECT tensor, step, target, expert, fro_norm, spectral_norm, stable_rank, rank1_energy FROM layers",
    "vectors": "SELECT tensor, step, target, k, sigma, u, v FROM vectors",
    "fits": "SELECT tensor, step, target, alpha, xmin, n_tail FROM fits",
    "spectra": "SELECT tensor, step, target, sv FROM spectra",
}


def _tables(cache) -> dict[str, list[tuple]]:
    con = Cache(cache).connect()
    return {
        name: sorted(con.execute(q + " WHERE run = 'r'").fetchall(), key=lambda r: r[:4]) for name, q in QUERIES.items()
    }


def _same(a: list[tuple], b: list[tuple], name: str) -> None:
    assert len(a) == len(b) and len(a) > 0, name
    for x, y in zip(a, b):
        assert x[:3] == y[:3], name
        for p, q in zip(x[3:], y[3:]):
            if p is None or q is None:
                assert p is None and q is None, (name, x[:3])
            else:
                p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
                assert np.allclose(p, q, rtol=1e-7, atol=1e-7, equal_nan=True), (name, x[:3])


@pytest.mark.parametrize("fixture", ["dense", "fused"])
def test_process_and_batched_engines_write_what_the_thread_engine_writes(fixture, tmp_path, cli) -> None:
    if fixture == "dense":
        fx = build_run(tmp_path / "d", ModelShape(n_layers=2, hidden=32, intermediate=64), steps=(10, 20))
        inputs = [str(fx.run_dir), "--base", str(fx.base_dir)]
    else:
        fused = build_fused(tmp_path / "f", "gpt_oss")
        inputs = ["--pair", str(fused.step_dir), "--base", str(fused.base_dir)]
    caches = {}
    for engine in ("threads", "processes", "batched"):
        caches[engine] = tmp_path / engine
        argv = [*inputs, "--run", "r", "--cache", caches[engine], "--engine", engine, "--device", "cpu"]
        code, out, err = cli("analyze", *argv)
        assert code == 0, err
        assert f"on cpu ({engine})" in out
    expected = _tables(caches["threads"])
    for engine in ("processes", "batched"):
        got = _tables(caches[engine])
        for name in QUERIES:
            if engine == "batched" and name == "spectra":  # a full Gram product instead of syrk: rounding differs
                continue
            _same(got[name], expected[name], f"{engine} {name}")


def test_a_nonfinite_weight_found_in_a_worker_process_is_the_usual_one_line_error(tmp_path, cli) -> None:
    fx = build_run(tmp_path / "d", ModelShape(n_layers=1, hidden=16, intermediate=32), steps=(10,))
    step = fx.run_dir / "checkpoint-10"
    tensors = {n: Checkpoint(step).read_tensor(n).float() for n in Checkpoint(step).tensors}
    name = "model.layers.0.mlp.up_proj.weight"
    tensors[name][3, 4] = float("nan")
    for f in step.glob("*.safetensors*"):
        f.unlink()
    write_checkpoint(step, tensors, "bf16")
    argv = [str(fx.run_dir), "--base", str(fx.base_dir), "--cache", tmp_path / "c", "--engine", "processes"]
    code, _, err = cli("analyze", *argv, "--device", "cpu", "--quiet")
    assert code == 2
    assert f"tensor '{name}' at step 10: expected finite values, found NaN or Inf in the step's weight" in err
    assert "Fix: the checkpoint is broken" in err and "Traceback" not in err
    assert not (tmp_path / "c" / "runs" / "run" / "steps" / "10").exists()  # nothing of that step written


def test_auto_starts_worker_processes_only_for_large_steps_on_cpu() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_engine("auto", cpu, PROCESS_MIN_ELEMENTS, 384, 2) == "processes"
    assert resolve_engine("auto", cpu, PROCESS_MIN_ELEMENTS - 1, 384, 2) == "threads"  # not worth the start
    assert resolve_engine("auto", cpu, PROCESS_MIN_ELEMENTS, 384, 1) == "threads"  # one core
    assert resolve_engine("auto", cuda, PROCESS_MIN_ELEMENTS, 384, 3) == "threads"
    assert resolve_engine("batched", cuda, 10, 1, 3) == "batched"
    with pytest.raises(UsageError, match="--engine: expected processes on CPU only"):
        resolve_engine("processes", cuda, 10, 1, 3)
    with pytest.raises(UsageError, match="--engine: expected one of auto, threads, processes, batched"):
        resolve_engine("fast", cpu, 10, 1, 3)


@pytest.mark.parametrize("shape", [(6, 40, 24), (6, 24, 40)])
def test_decompose_batch_equals_decompose_matrix_by_matrix(shape) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[2] = 0.0  # an untouched expert: no NaN, no triplets
    for topk in (0, 4):
        batch = spectral.decompose_batch(x, topk)
        for i in range(shape[0]):
            one = spectral.decompose(x[i], topk)
            assert torch.allclose(batch[i].sv, one.sv, rtol=1e-10, atol=1e-12)
            assert asdict(batch[i].stats) == pytest.approx(asdict(one.stats), rel=1e-10, abs=1e-12)
            if topk:
                assert batch[i].triplets is not None and one.triplets is not None
                assert torch.allclose(batch[i].triplets.u, one.triplets.u, atol=1e-9)
                assert torch.allclose(batch[i].triplets.v, one.triplets.v, atol=1e-9)


def test_a_worker_process_killed_mid_step_is_a_one_line_error_and_nothing_is_written(tmp_path, cli) -> None:
    fx = build_run(tmp_path / "d", ModelShape(n_layers=8, hidden=256, intermediate=1024), steps=(10,))
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.time() + 60
        while not killed and time.time() < deadline:
            for task in Path("/proc/self/task").iterdir():
                for child in (task / "children").read_text().split():
                    if "spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                        os.kill(int(child), signal.SIGKILL)
                        killed.append(int(child))
                        return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    argv = [str(fx.run_dir), "--base", str(fx.base_dir), "--cache", tmp_path / "c", "--engine", "processes"]
    code, _, err = cli("analyze", *argv, "--device", "cpu", "--quiet", "--no-base", "--workers", "2")
    killer.join()
    assert killed, "no worker process was seen"
    assert code == 2 and "Traceback" not in err
    assert "expected its worker processes to finish, found one of them died" in err and "--workers 1" in err
    assert not (tmp_path / "c" / "runs" / "run" / "steps" / "10").exists()
