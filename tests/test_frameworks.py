"""Training checkpoints as verl and torch.distributed write them, read exactly (issue: frameworks).

The fixtures are written by the frameworks' own code, run here on CPU: verl 0.9.1's
`FSDPCheckpointManager.save_checkpoint` (FSDP1 and FSDP2, gloo, 2 ranks; FSDP2 on a 2 x 2 HSDP mesh and
sharded by columns), verl's `model_merger` (its bf16
output), and `torch.distributed.checkpoint.save` (2 ranks); see `rlvr_core.fixtures.verl_run`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rlvr_core.cache import open_cache
from rlvr_core.fixtures.verl_run import PLANTED, build_verl_run, merge_with_verl
from rlvr_core.readers.formats import open_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def verl_runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("verl")
    fsdp2 = build_verl_run(root / "fsdp2", fsdp=2, steps=(1, 2), hf=True)
    return {
        "fsdp2": fsdp2,
        "fsdp1": build_verl_run(root / "fsdp1", fsdp=1, steps=(1,)),
        "dcp": build_verl_run(root / "dcp", fsdp="dcp", steps=(1,)),
        "hsdp": build_verl_run(root / "hsdp", fsdp="hsdp", steps=(1,), world=4),
        "dim1": build_verl_run(root / "dim1", fsdp="dim1", steps=(1,)),
        "merged": merge_with_verl(fsdp2.actor(1), root / "merged-step1"),
    }


def _delta(folder: Path, base: Path) -> dict[str, torch.Tensor]:
    step, b = open_checkpoint(folder), open_checkpoint(base)
    return {name: step.read_tensor(name).double() - b.read_tensor(name).double() for name in b.tensors}


def test_raw_shards_give_the_fp32_update_bit_for_bit_and_the_bf16_merge_does_not(verl_runs) -> None:
    run = verl_runs["fsdp2"]
    shards = open_checkpoint(run.actor(1))
    assert type(shards).__name__ == "FsdpCheckpoint" and shards.source == "fsdp-shards"
    exact = _delta(run.actor(1), run.base_dir)  # verl's raw rank files
    saved = _delta(run.actor(1) / "huggingface", run.base_dir)  # verl's own fp32 hf_model save
    assert exact.keys() == saved.keys() and all(torch.equal(exact[n], saved[n]) for n in exact)
    for other in ("fsdp1", "dcp", "hsdp", "dim1"):  # FSDP1, DCP, HSDP (2 x 2), Shard(1): the same weights
        again = _delta(verl_runs[other].actor(1), verl_runs[other].base_dir)
        assert all(torch.equal(exact[n], again[n]) for n in exact), other
    merged = _delta(verl_runs["merged"], run.base_dir)
    q = "model.layers.0.self_attn.q_proj.weight"  # an update of RMS 1e-5: mostly below bf16's spacing
    assert (exact[q] == 0).double().mean() < 0.01 and (merged[q] == 0).double().mean() > 0.5
    s_exact, s_merged = torch.linalg.svdvals(exact[PLANTED]), torch.linalg.svdvals(merged[PLANTED])
    assert s_exact[0] / s_exact[1] > 2 * s_merged[0] / s_merged[1]  # the rank-1 structure blurred by rounding


def test_a_verl_run_is_analysed_from_its_raw_shards_and_the_precision_recorded(verl_runs, tmp_path, cli) -> None:
    run, cache = verl_runs["fsdp2"], tmp_path / "cache"
    rc, _, err = cli("analyze", run.run_dir, "--base", run.base_dir, "--cache", cache, "--no-fits", "--quiet")
    assert rc == 0, err
    assert "warning" not in err  # exact fp32 weights: nothing to warn about
    argv = ("analyze", "--checkpoint", f"1={verl_runs['merged']}", "--base", run.base_dir, "--run", "merged")
    rc, _, err = cli(*argv, "--cache", cache, "--no-fits", "--quiet")
    assert rc == 0, err
    (line,) = [x for x in err.splitlines() if x.startswith("warning: step 1")]
    assert "BF16" in line and "% of its" in line and "exactly 0" in line and "actor/" in line
    con = open_cache(cache)
    rows = con.execute(
        "SELECT run, step, path, weights_source, weights_dtype, dw_zero_fraction FROM checkpoints "
        "WHERE step > 0 ORDER BY run, step"
    ).fetchall()
    run_name = run.run_dir.name
    assert [r[:2] for r in rows] == [("merged", 1), (run_name, 1), (run_name, 2)]
    by = {(r[0], r[1]): r for r in rows}
    assert by[(run_name, 1)][2].endswith("global_step_1/actor") and by[(run_name, 1)][3:5] == ("fsdp-shards", "F32")
    assert by[(run_name, 1)][5] < 0.01 and by[("merged", 1)][3:5] == ("safetensors", "BF16")
    assert by[("merged", 1)][5] > 0.25
    (e1,) = con.execute(
        "SELECT rank1_energy FROM layers WHERE run = ? AND step = 2 AND target = 'dW' AND tensor = ?",
        [run_name, PLANTED],
    ).fetchone()
    assert e1 > 0.9  # the planted direction, read exactly
    rc, out, _ = cli("runs", "--cache", cache, "--json")
    entry = {e["run"]: e for e in json.loads(out)}[run_name]
    assert entry["precision"] == {"0": "BF16 (safetensors)", "1": "F32 (fsdp-shards)", "2": "F32 (fsdp-shards)"}


def test_fsdp1_and_dcp_runs_are_analysed_with_no_conversion(verl_runs, tmp_path, cli) -> None:
    for name in ("fsdp1", "dcp"):
        run = verl_runs[name]
        cache = tmp_path / name
        rc, _, err = cli("analyze", run.run_dir, "--base", run.base_dir, "--cache", cache, "--no-fits", "--quiet")
        assert rc == 0, err
        (source,) = open_cache(cache).execute("SELECT weights_source FROM checkpoints WHERE step = 1").fetchone()
        assert source == ("fsdp-shards" if name == "fsdp1" else "dcp")


@pytest.mark.parametrize("kind", ["fsdp2", "dcp"])
def test_a_verl_run_is_watched_with_no_conversion(verl_runs, tmp_path, kind) -> None:
    from rlvr_core.pipelines import watch as w

    run = verl_runs[kind]
    config = w.WatchConfig(run_dir=run.run_dir, base=run.base_dir, run="live", cache=tmp_path / "c", settle=0,
                           fits=False, polls=1)  # fmt: skip
    said: list[str] = []
    state = w.watch(config, lambda: False, said.append)
    assert sorted(s for s, seconds in state.analysed.items() if seconds > 0) == list(run.steps), said


def test_unsupported_shards_are_one_line(verl_runs, tmp_path, cli) -> None:
    import shutil

    actor = tmp_path / "actor"
    shutil.copytree(verl_runs["fsdp2"].actor(1), actor)
    (actor / "model_world_size_2_rank_1.pt").unlink()
    rc, _, err = cli("analyze", "--checkpoint", f"1={actor}", "--base", verl_runs["fsdp2"].base_dir, "--cache",
                     tmp_path / "c")  # fmt: skip
    assert rc == 2 and err.strip().splitlines()[-1].startswith("error: ") and "rank(s) [1] missing" in err
    lora = tmp_path / "lora"
    lora.mkdir()
    torch.save(
        {"model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(2, 4)}, lora / "model_world_size_1_rank_0.pt"
    )
    rc, _, err = cli("analyze", "--checkpoint", f"1={lora}", "--base", verl_runs["fsdp2"].base_dir, "--cache",
                     tmp_path / "c")  # fmt: skip
    assert rc == 2 and "LoRA-only" in err
    assert not list((tmp_path / "c").rglob("*.parquet"))


VERL_LOGGING = """
import os, sys, numpy as np
from verl.utils.tracking import Tracking
tracker = Tracking(project_name="proj", experiment_name="exp", default_backend=["console", "file", "tensorboard"])
for step in range(1, 9):
    data = {"critic/score/mean": np.float64(0.1 * step), "timing_s/gen": 1.5}
    if step % 2 == 0:
        data["val-core/openai/gsm8k/acc/mean@1"] = np.float64(0.3 + 0.01 * step)
        data["val-core/math500/acc/mean@1"] = np.float64(0.2)
    tracker.log(data=data, step=step)
tracker.logger["file"].finish()
tracker.logger["tensorboard"].finish()
"""


def test_verls_own_loggers_are_read_console_file_and_tensorboard(tmp_path, cli) -> None:
    """verl 0.9.1's `Tracking` writes the three logs (console: its stdout); each gives the same metrics."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(tmp_path / "metrics.jsonl"),
           "TENSORBOARD_DIR": str(tmp_path / "tb")}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", VERL_LOGGING], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (tmp_path / "stdout.log").write_text(proc.stdout)
    assert "np.float64(" in proc.stdout  # numpy 2 scalars as verl prints them
    for path, fmt in ((tmp_path / "stdout.log", "verl-console"), (tmp_path / "metrics.jsonl", "verl"),
                      (tmp_path / "tb", "tensorboard")):  # fmt: skip
        rc, out, err = cli("logs", path, "--run", fmt, "--cache", tmp_path / "cache")
        assert rc == 0, err
        assert (
            f"({fmt}" in out and "test 'val-core/math500/acc/mean@1'" in out and "undefined over 4 shared steps" in out
        )
        assert "other validation sets: val-core/openai/gsm8k/acc/mean@1" in err
    con = open_cache(tmp_path / "cache")
    series = con.execute(
        "SELECT run, list(value ORDER BY step) FROM metrics WHERE name = 'critic/score/mean' GROUP BY run ORDER BY run"
    ).fetchall()
    assert len(series) == 3 and all(np.allclose(values, [0.1 * s for s in range(1, 9)]) for _, values in series)


def test_a_wandb_history_of_openrlhf_is_read_on_its_own_step_keys(tmp_path, cli) -> None:
    """Rows as OpenRLHF 0.11.2's WandbLogger logs them (no `step=`: W&B's `_step` counts log calls; train
    rows carry `train/global_step`, eval rows `eval/global_step`), exported as scan_history() JSONL."""
    rows, call = [], 0
    for step in range(1, 21):
        rows.append({"_step": call, "train/reward": 0.02 * step, "train/global_step": step})
        call += 1
        if step % 5 == 0:
            rows.append({"_step": call, "eval/eval_gsm8k_pass1": 0.4 + 0.01 * step, "eval/global_step": step})
            call += 1
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(json.dumps(r) for r in rows))
    rc, out, err = cli("logs", history, "--run", "orl", "--cache", tmp_path / "c")
    assert rc == 0, err
    assert "peaks at step 20" in out and "over 4 shared steps" in out and "warning" not in err, (out, err)
    lonely = tmp_path / "lonely.jsonl"  # reward and test on steps that never meet
    lonely.write_text("\n".join(json.dumps({"step": s, "train/reward": 0.1, "eval/accuracy": 0.2} if s == 1 else
                                           {"step": s, "train/reward": 0.1 * s}) for s in range(1, 6)))  # fmt: skip
    rc, out, err = cli("logs", lonely, "--run", "lonely", "--cache", tmp_path / "c")
    assert rc == 0 and "nan" not in out and "no Spearman rho: reward and test share 1 step(s)" in out
    assert "too few for a Spearman rho" in err
    rc, _, err = cli("logs", tmp_path / "c", "--run", "x", "--cache", tmp_path / "c2")
    assert rc == 2 and "VERL_FILE_LOGGER_PATH" in err and "--logger.tensorboard_dir" in err


def test_a_zero_save_that_cannot_be_read_gets_the_exact_conversion_command(verl_runs, tmp_path, cli) -> None:
    """File names as DeepSpeed's `engine.save_checkpoint` writes them under OpenRLHF 0.11.2's
    `<ckpt.path>/_actor/`, holding no DeepSpeed states (empty dicts): whichever way the folder is given, one
    line ends in DeepSpeed's own conversion command. (Real ZeRO saves are read: tests/test_zero.py.)"""
    ckpt = tmp_path / "ckpt"
    tag = ckpt / "_actor" / "global_step10"
    tag.mkdir(parents=True)
    for name in ("mp_rank_00_model_states.pt", "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"):
        torch.save({}, tag / name)
    (ckpt / "_actor" / "latest").write_text("global_step10")
    (ckpt / "_actor" / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
    base = verl_runs["fsdp2"].base_dir
    for argv in (("analyze", ckpt), ("analyze", ckpt / "_actor"), ("analyze", "--checkpoint", f"10={tag}"),
                 ("analyze", "--pair", tag)):  # fmt: skip
        rc, _, err = cli(*argv, "--base", base, "--cache", tmp_path / "c")
        last = err.strip().splitlines()[-1]
        assert rc == 2 and last.startswith("error: "), err
        assert f"zero_to_fp32.py {ckpt / '_actor'} {ckpt / '_actor' / 'global_step10_fp32'} --tag global_step10" in last


OPENRLHF_WANDB = """
import types
from openrlhf.utils.logging_utils import WandbLogger
wandb_args = types.SimpleNamespace(key=None, org=None, project="p", group=None, run_name="r")
logger = WandbLogger(types.SimpleNamespace(logger=types.SimpleNamespace(wandb=wandb_args)))
for step in range(1, 21):
    logger.log_train(step, {"reward": 0.02 * step, "kl": 0.01})
    if step % 5 == 0:
        logger.log_eval(step, {"eval_gsm8k_pass1": 0.4 + 0.01 * step})
logger.close()
"""


def test_an_offline_wandb_run_of_openrlhfs_logger_is_read(tmp_path, cli) -> None:
    """OpenRLHF 0.11.2's own WandbLogger, W&B offline (no network): its run-*.wandb is read on OpenRLHF's
    step keys (train/global_step, eval/global_step), not on W&B's _step (which counts log calls)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", OPENRLHF_WANDB], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    for given in (run_file, tmp_path / "wandb"):
        rc, out, err = cli("logs", given, "--run", "orl", "--cache", tmp_path / "c")
        assert rc == 0, err
        assert "(wandb-offline" in out and "reward 'train/reward' peaks at step 20" in out, out
        assert "test 'eval/eval_gsm8k_pass1' peaks at step 20" in out and "over 4 shared steps" in out, out
    steps = (
        open_cache(tmp_path / "c")
        .execute("SELECT list(step ORDER BY step) FROM metrics WHERE name = 'eval/eval_gsm8k_pass1'")
        .fetchone()[0]
    )
    assert steps == [5, 10, 15, 20]
    cut = tmp_path / "cut.wandb"  # a run still writing: the whole records before the cut are read
    cut.write_bytes(run_file.read_bytes()[: run_file.stat().st_size - 40])
    rc, out, err = cli("logs", cut, "--run", "cut", "--cache", tmp_path / "c")
    assert rc == 0 and "wandb-offline" in out, err


def test_pages_read_from_a_rank_file_are_dropped_and_anonymous_memory_never(verl_runs) -> None:
    from rlvr_core.readers.fsdp import FsdpCheckpoint
    from rlvr_core.system.libc import drop_mapped_pages

    shards = FsdpCheckpoint(verl_runs["fsdp2"].actor(1))
    first = shards.read_tensor(PLANTED)  # its mapped pages were dropped after the copy
    assert torch.equal(first, shards.read_tensor(PLANTED))  # and are read from the file again
    block = shards._state(0)[PLANTED]._local_tensor
    assert drop_mapped_pages(block.data_ptr(), block.numel() * block.element_size(), str(shards.rank_files[0]))
    ones = torch.ones(100_000)  # anonymous memory: MADV_DONTNEED would zero it, so it is refused
    assert not drop_mapped_pages(ones.data_ptr(), 400_000, str(shards.rank_files[0])) and float(ones.sum()) == 1e5


def test_openrlhfs_output_dir_and_a_raw_verl_actor_get_the_right_advice(verl_runs, tmp_path, cli) -> None:
    """OpenRLHF 0.11.2: --ckpt.output_dir (default ./ckpt) gets the final save_pretrained model, its steps go
    to --ckpt.path (default ./ckpt/checkpoints_ppo_ray: global_step<N>_hf/ with --ckpt.save_hf)."""
    import shutil

    run = verl_runs["fsdp2"]
    output_dir = tmp_path / "ckpt"
    shutil.copytree(run.base_dir, output_dir)  # the final model, as save_model writes it
    shutil.copytree(run.base_dir, output_dir / "checkpoints_ppo_ray" / "global_step10_hf")
    rc, _, err = cli("analyze", output_dir, "--base", run.base_dir, "--cache", tmp_path / "c")
    assert rc == 2 and f"one level down, in {output_dir / 'checkpoints_ppo_ray'}" in err
    rc, _, err = cli("analyze", output_dir / "checkpoints_ppo_ray", "--base", run.base_dir, "--cache", tmp_path / "c",
                     "--no-fits", "--quiet")  # fmt: skip
    assert rc == 0, err
    rc, _, err = cli("analyze", run.actor(1), "--base", run.base_dir, "--cache", tmp_path / "c2")
    assert rc == 2 and f"pass the run folder {run.run_dir}" in err


OPENRLHF_TENSORBOARD = """
import sys, types
from openrlhf.utils.logging_utils import TensorboardLogger
logger_args = types.SimpleNamespace(tensorboard_dir=sys.argv[1], wandb=types.SimpleNamespace(run_name="r"))
logger = TensorboardLogger(types.SimpleNamespace(logger=logger_args))
for step in range(1, 21):
    logger.log_train(step, {"reward": 0.02 * step, "kl": 0.01, "generated_samples": ["2+2=4", 1.0]})
    if step % 5 == 0:
        logger.log_eval(step, {"eval_gsm8k_pass1": 0.4 + 0.01 * step})
logger.close()
"""


def test_openrlhfs_own_tensorboard_logger_is_read(tmp_path, cli) -> None:
    """OpenRLHF 0.11.2's TensorboardLogger (`--logger.tensorboard_dir`: one run folder inside, scalars under
    train/ and eval/, samples as text) read by `rlvr logs` from the folder the user passed to OpenRLHF."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", OPENRLHF_TENSORBOARD, str(tmp_path / "tb")], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rc, out, err = cli("logs", tmp_path / "tb", "--run", "orl", "--cache", tmp_path / "c")
    assert rc == 0, err
    assert "reward 'train/reward' peaks at step 20" in out and "test 'eval/eval_gsm8k_pass1' peaks at step 20" in out
    assert "over 4 shared steps" in out, out
