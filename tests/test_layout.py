"""Step discovery for every framework layout, explicit checkpoints, and the errors for bad run folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr_core.errors import RunLayoutError, UsageError
from rlvr_core.fixtures import ModelShape, build_run
from rlvr_core.readers.layout import discover_steps, parse_explicit, parse_steps

TINY = ModelShape(n_layers=1, hidden=8, intermediate=16, kv_dim=4, vocab=8)


@pytest.mark.parametrize(
    "layout,expected_dir",
    [
        ("trl", "checkpoint-{}"),
        ("verl", "global_step_{}/actor/huggingface"),
        ("openrlhf", "global_step{}_hf"),
        ("plain", "step_{}"),
    ],
)
def test_each_framework_layout_is_discovered(tmp_path: Path, layout: str, expected_dir: str) -> None:
    fx = build_run(tmp_path, TINY, steps=(5, 40, 100), layout=layout, shards=1)
    found = discover_steps(fx.run_dir)
    assert [c.step for c in found] == [5, 40, 100]
    assert [c.layout for c in found] == [layout] * 3
    assert found[1].path == fx.run_dir / expected_dir.format(40)


@pytest.mark.parametrize("name,step", [("step-7", 7), ("qwen-grpo-step-12", 12), ("step_3", 3)])
def test_plain_name_variants(tmp_path: Path, name: str, step: int) -> None:
    fx = build_run(tmp_path / "src", TINY, steps=(1,), layout="plain", shards=1)
    (tmp_path / "run").mkdir()
    fx.step_dirs[1].rename(tmp_path / "run" / name)
    assert [(c.step, c.path.name) for c in discover_steps(tmp_path / "run")] == [(step, name)]


def test_a_verl_step_with_neither_rank_files_nor_merged_weights_is_named(tmp_path: Path) -> None:
    """verl's rank files are read directly (tests/test_frameworks.py): no merge is asked for; a step that has
    neither them nor merged weights (the trainer still writing) is named, and the others can be chosen."""
    fx = build_run(tmp_path, TINY, steps=(10, 20), layout="verl", shards=1)
    hf = fx.step_dirs[20]
    for f in hf.glob("model*.safetensors*"):
        f.unlink()
    with pytest.raises(RunLayoutError) as err:
        discover_steps(fx.run_dir)
    message = str(err.value)
    assert "step 20" in message and "no weights in 1 verl step(s): [20]" in message
    assert "model_world_size_W_rank_R.pt" in message and "no merge is needed" in message
    assert [c.step for c in discover_steps(fx.run_dir, steps=[10])] == [10]


def test_steps_selection_and_missing_step(tmp_path: Path) -> None:
    fx = build_run(tmp_path, TINY, steps=(10, 20, 30), shards=1)
    assert [c.step for c in discover_steps(fx.run_dir, [30, 10])] == [10, 30]
    with pytest.raises(RunLayoutError, match=r"no checkpoint for step\(s\) \[25\]; available: \[10, 20, 30\]"):
        discover_steps(fx.run_dir, [10, 25])


def test_folder_without_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    with pytest.raises(RunLayoutError, match="expected checkpoint folders .* found entries: logs"):
        discover_steps(tmp_path)
    with pytest.raises(RunLayoutError, match="no such folder"):
        discover_steps(tmp_path / "nope")


def test_explicit_checkpoints_and_steps_parsing(tmp_path: Path) -> None:
    found = parse_explicit([f"200={tmp_path}/b", f"100={tmp_path}/a"])
    assert [(c.step, c.path.name, c.layout) for c in found] == [(100, "a", "explicit"), (200, "b", "explicit")]
    with pytest.raises(UsageError, match="STEP=PATH"):
        parse_explicit(["ckpt"])
    assert parse_steps("200, 100,100") == [100, 200]
    with pytest.raises(UsageError, match="comma-separated step numbers"):
        parse_steps("10,x")
