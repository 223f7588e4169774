"""DeepSpeed ZeRO saves (OpenRLHF's default) read directly: the fp32 master weights (issue: frameworks).

The fixtures are written by DeepSpeed 0.19.8's own engine on CPU (gloo, 2 ranks, bf16, ZeRO-2 and ZeRO-3),
saved the way OpenRLHF 0.11.2's `save_ckpt` / `save_model` call it (`rlvr_core.fixtures.openrlhf_run`); the
reference for every tensor is DeepSpeed's own `zero_to_fp32.get_fp32_state_dict_from_zero_checkpoint`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from rlvr_core.cache import open_cache
from rlvr_core.fixtures.openrlhf_run import build_openrlhf_run
from rlvr_core.readers.completeness import scan
from rlvr_core.readers.formats import open_checkpoint
from rlvr_core.readers.layout import discover_steps

pytestmark = pytest.mark.slow
Q = "model.layers.0.self_attn.q_proj.weight"


@pytest.fixture(scope="module")
def zero_runs(tmp_path_factory) -> dict:
    pytest.importorskip("deepspeed")
    root = tmp_path_factory.mktemp("zero")
    return {stage: build_openrlhf_run(root / f"z{stage}", stage=stage) for stage in (2, 3)}


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_partitions_equal_deepspeeds_own_zero_to_fp32_bit_for_bit(zero_runs, stage, monkeypatch) -> None:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    import rlvr_core.readers.zero as zero

    dropped: list[bool] = []  # every piece read is let go from memory once copied out (as the FSDP reader's)
    drop = zero.drop_mapped_pages
    monkeypatch.setattr(zero, "drop_mapped_pages", lambda *a: dropped.append(drop(*a)) or dropped[-1])

    run = zero_runs[stage]
    for step in run.steps:
        reference = get_fp32_state_dict_from_zero_checkpoint(str(run.ckpt_path / "_actor"), tag=f"global_step{step}")
        checkpoint = open_checkpoint(run.tag(step))
        assert type(checkpoint).__name__ == "ZeroCheckpoint" and checkpoint.source == "zero-partitions"
        assert (checkpoint.stage, checkpoint.world) == (stage, 2)
        assert set(checkpoint.tensors) == set(reference)
        for name, expected in reference.items():
            expected = expected.contiguous()
            got = checkpoint.read_tensor(name)
            assert got.dtype == torch.float32 and torch.equal(got, expected), name
            assert checkpoint.tensors[name].dtype == "F32"
            if got.ndim == 2:  # one row alone (a fused expert's slice is read this way)
                assert torch.equal(checkpoint.read_tensor(name, index=got.shape[0] - 1), expected[-1])
    assert dropped and all(dropped)


def test_an_openrlhf_run_is_analysed_from_its_zero_save_and_its_hf_copy_warned(zero_runs, tmp_path, cli) -> None:
    run, cache = zero_runs[3], tmp_path / "cache"
    found = discover_steps(run.ckpt_path)  # the ZeRO save wins over the bf16 _hf copy of the same step
    assert [(c.step, c.path, c.layout) for c in found] == [(s, run.tag(s), "deepspeed") for s in run.steps]
    assert [c.path for c in discover_steps(run.ckpt_path / "_actor")] == [run.tag(s) for s in run.steps]
    rc, _, err = cli("analyze", run.ckpt_path, "--base", run.base_dir, "--cache", cache, "--run", "zero",
                     "--no-fits", "--quiet")  # fmt: skip
    assert rc == 0 and "warning" not in err, err
    argv = ("analyze", "--checkpoint", f"1={run.hf(1)}", "--base", run.base_dir, "--run", "hf")
    rc, _, err = cli(*argv, "--cache", cache, "--no-fits", "--quiet")
    (line,) = [x for x in err.splitlines() if x.startswith("warning: step 1")]
    assert rc == 0 and "BF16" in line and "exactly 0" in line and "_actor/global_stepN" in line
    rows = (
        open_cache(cache)
        .execute(
            "SELECT run, step, path, weights_source, weights_dtype, dw_zero_fraction FROM checkpoints WHERE step = 1 "
            "ORDER BY run"
        )
        .fetchall()
    )
    by = {r[0]: r for r in rows}
    assert by["zero"][2] == str(run.tag(1)) and by["zero"][3:5] == ("zero-partitions", "F32")
    assert by["hf"][3:5] == ("safetensors", "BF16") and by["hf"][5] > 0.25 > 0.01 > by["zero"][5]
    exact = open_checkpoint(run.tag(1)).read_tensor(Q).double()
    rounded = open_checkpoint(run.hf(1)).read_tensor(Q).double()
    base = open_checkpoint(run.base_dir).read_tensor(Q).double()
    assert torch.equal(rounded, exact.to(torch.bfloat16).double())  # the _hf copy is the master, rounded
    assert not torch.equal(exact - base, rounded - base)


def test_an_openrlhf_zero_run_is_watched_and_an_uncommitted_tag_waits(zero_runs, tmp_path) -> None:
    from rlvr_core.pipelines import watch as w

    run = zero_runs[2]
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run.ckpt_path, ckpt)
    (ckpt / "_actor" / "latest").write_text("global_step1")  # step 2 still being saved: not committed
    ready, waiting = scan(ckpt, [], 0)
    assert [c.step for c in ready] == [1] and "not committed yet" in waiting[2], waiting
    (ckpt / "_actor" / "latest").write_text("global_step2")
    config = w.WatchConfig(run_dir=ckpt, base=run.base_dir, run="live", cache=tmp_path / "c", settle=0, fits=False,
                           polls=1)  # fmt: skip
    said: list[str] = []
    state = w.watch(config, lambda: False, said.append)
    assert sorted(s for s, seconds in state.analysed.items() if seconds > 0) == list(run.steps), said
    sources = open_cache(tmp_path / "c").execute("SELECT DISTINCT weights_source FROM checkpoints WHERE step > 0")
    assert sources.fetchall() == [("zero-partitions",)]


class _Payload:
    """Pickles as a call to os.system: a checkpoint that would run it when loaded unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_zero_saves_that_cannot_be_read_are_one_line_and_nothing_in_them_runs(zero_runs, tmp_path, cli) -> None:
    run = zero_runs[3]
    rank0, rank1 = "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt", "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt"
    cases = {
        "missing": lambda tag: (tag / rank1).unlink(),
        "expert": lambda tag: shutil.copy(tag / rank0, tag / "expp_rank_0_mp_rank_00_optim_states.pt"),
        "payload": lambda tag: torch.save({"optimizer_state_dict": _Payload(tmp_path / "ran")}, tag / rank0),
    }
    expected = {"missing": "partition count 2", "expert": "expert-parallel", "payload": "unknown type (posix.system)"}
    for label, damage in cases.items():
        tag = tmp_path / label / "_actor" / "global_step1"
        shutil.copytree(run.tag(1), tag)
        (tag.parent / "latest").write_text("global_step1")
        (tag.parent / "zero_to_fp32.py").write_text("# DeepSpeed's script\n")
        damage(tag)
        rc, _, err = cli("analyze", "--checkpoint", f"1={tag}", "--base", run.base_dir, "--cache", tmp_path / "c")
        last = err.strip().splitlines()[-1]
        assert rc == 2 and last.startswith("error: ") and expected[label] in last, (label, err)
        assert f"zero_to_fp32.py {tag.parent} {tag.parent / 'global_step1_fp32'} --tag global_step1" in last, label
    assert not (tmp_path / "ran").exists()  # the payload's os.system never ran
