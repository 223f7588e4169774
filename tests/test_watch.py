"""`rlvr watch` against a run written step by step by another process, the way a trainer writes it:
shards in pieces with pauses, then the index, config and trainer state. Every step must be analysed
exactly once, never while incomplete, with no error for the partial states, and soon after it is
complete."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rlvr_core.cache import Cache
from rlvr_core.fixtures import ModelShape, build_run, slow_writer
from rlvr_core.readers import completeness
from rlvr_core.readers.layout import step_folders


def test_completeness_waits_for_every_shard_byte_and_quiet(tmp_path) -> None:
    fx = build_run(tmp_path / "fx", ModelShape(n_layers=1), steps=(10,))
    folder = step_folders(fx.run_dir)[0].path
    assert completeness.state(folder, settle=0) is None
    assert "settle" in completeness.state(folder, settle=3600)
    shard = sorted(folder.glob("*.safetensors"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    assert f"{len(data) - 10} of {len(data)} bytes" in completeness.state(folder, settle=0)
    shard.write_bytes(data[:5])
    assert "header not written yet" in completeness.state(folder, settle=0)
    shard.unlink()
    assert "shards not written yet" in completeness.state(folder, settle=0)
    shard.write_bytes(data)
    (fx.run_dir / completeness.VERL_MARKER).write_text("5\n")
    assert "step 5 is the last one saved" in completeness.state(folder, settle=0, step=10)


@pytest.mark.slow
def test_watch_analyses_each_step_once_when_complete_and_stops_on_sigterm(tmp_path) -> None:
    fx = build_run(tmp_path / "fx", ModelShape(n_layers=2), steps=(10, 20, 30))
    run_dir, cache = tmp_path / "live" / "run", tmp_path / "cache"
    run_dir.mkdir(parents=True)
    interval, settle = 0.5, 1.5
    argv = ["watch", str(run_dir), "--base", str(fx.base_dir), "--run", "live", "--cache", str(cache)]
    argv += ["--interval", str(interval), "--settle", str(settle), "--device", "cpu", "--log", str(run_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "rlvr_core", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        go = tmp_path / "go"
        writer = slow_writer.start(fx.run_dir, run_dir, 0.3, hold_last=go)
        deadline = time.time() + 180
        while time.time() < deadline and not (cache.exists() and 20 in Cache(cache).queries().steps("live")):
            time.sleep(0.1)
        go.touch()
        written, writer_err = writer.communicate(timeout=120)
        assert writer.returncode == 0, writer_err
        complete_at = {r["step"]: r["complete_at"] for r in map(json.loads, written.splitlines())}
        deadline, visible_at = time.time() + 180, None
        while time.time() < deadline:
            if cache.exists() and 30 in Cache(cache).queries().steps("live"):
                visible_at = time.time()
                break
            time.sleep(0.1)
        assert visible_at is not None, "step 30 never reached the cache"
        time.sleep(interval + 0.5)
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, err
    assert "error" not in (out + err).lower(), out + err
    lines = out.splitlines()
    for step in (10, 20, 30):
        assert sum(f"step {step}: analysed in" in line for line in lines) == 1, out
    assert any("not complete yet" in line for line in lines), out  # partial states were seen, and waited for
    assert Cache(cache).queries().steps("live") == [0, 10, 20, 30]
    analysis = float(next(line for line in lines if "step 30: analysed in" in line).split(" in ")[1].split(" s")[0])
    latency = visible_at - complete_at[30]
    assert latency <= interval + settle + analysis + 3.0, (latency, analysis)  # 3 s: process start-up, a busy CPU
    assert "SIGTERM: stopping" in out and "stopped: 3 step(s) handled" in out
    shutil.rmtree(run_dir / "checkpoint-10")  # the trainer's save_total_limit: cached results stay
    assert 10 in Cache(cache).queries().steps("live")
    files = Cache(cache).queries().checkpoints().set_index("step")["files"]
    assert (files[10], files[20]) == ("gone", "there")  # what the Runs page says
