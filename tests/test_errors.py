"""Bad input: one clear line (subject, expected, found, fix), exit 2, and no Parquet left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rlvr_core.errors import CheckpointFormatError, RlvrError
from rlvr_core.readers.checkpoint import Checkpoint

from .conftest import parquet_files


def analyze(cli, fx, cache: Path, *extra: str) -> tuple[int, str]:
    rc, _, err = cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, *extra)
    return rc, err


def assert_clean_failure(rc: int, err: str, cache: Path, *fragments: str) -> None:
    assert rc == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert " expected " in err and ", found " in err and ". Fix: " in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert parquet_files(cache) == []


def shard_holding(folder: Path, name: str) -> Path:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return folder / index["weight_map"][name]


def rewrite_shard(file: Path, edit) -> None:
    from safetensors import safe_open

    with safe_open(str(file), "pt") as h:
        tensors = {k: h.get_tensor(k) for k in h.keys()}
    edit(tensors)
    save_file(tensors, str(file))


Q = "model.layers.1.self_attn.q_proj.weight"


def test_shape_mismatch_names_tensor_and_both_shapes(run_fixture, tmp_path, cli) -> None:
    rewrite_shard(shard_holding(run_fixture.step_dirs[20], Q), lambda t: t.update({Q: torch.zeros(32, 16)}))
    rc, err = analyze(cli, run_fixture, tmp_path / "cache")
    assert_clean_failure(rc, err, tmp_path / "cache", f"tensor '{Q}'", "(32, 32)", "(32, 16)")


def test_tensor_missing_from_step(run_fixture, tmp_path, cli) -> None:
    folder = run_fixture.step_dirs[10]
    rewrite_shard(shard_holding(folder, Q), lambda t: t.pop(Q))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    del index["weight_map"][Q]
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    rc, err = analyze(cli, run_fixture, tmp_path / "cache")
    assert_clean_failure(rc, err, tmp_path / "cache", f"tensor '{Q}'", "missing")


def test_tensor_missing_from_base(run_fixture, tmp_path, cli) -> None:
    rewrite_shard(
        shard_holding(run_fixture.step_dirs[10], Q),
        lambda t: t.update({"model.layers.1.self_attn.extra_proj.weight": torch.zeros(4, 4)}),
    )
    rc, err = analyze(cli, run_fixture, tmp_path / "cache")
    assert_clean_failure(
        rc, err, tmp_path / "cache", "'model.layers.1.self_attn.extra_proj.weight'", "present in the base", "(4, 4)"
    )


def test_truncated_shard(run_fixture, tmp_path, cli) -> None:
    shard = shard_holding(run_fixture.step_dirs[20], Q)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 100])
    rc, err = analyze(cli, run_fixture, tmp_path / "cache")
    assert_clean_failure(rc, err, tmp_path / "cache", str(shard), "truncated", "re-copy")


def test_file_that_is_not_safetensors(run_fixture, tmp_path, cli) -> None:
    shard = shard_holding(run_fixture.step_dirs[10], Q)
    shard.write_bytes(b"PK\x03\x04 this is a zip / torch.save pickle, not safetensors" * 10)
    rc, err = analyze(cli, run_fixture, tmp_path / "cache")
    assert_clean_failure(rc, err, tmp_path / "cache", str(shard), "a safetensors file", "safe_serialization=True")


def test_folder_with_pytorch_bin_only(tmp_path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02")
    with pytest.raises(CheckpointFormatError) as err:
        Checkpoint(tmp_path)
    assert "model.safetensors" in str(err.value) and "save_pretrained(DIR, safe_serialization=True)" in str(err.value)


def test_lora_adapter_folder(tmp_path) -> None:
    save_file({"a": torch.zeros(2)}, str(tmp_path / "adapter_model.safetensors"))
    with pytest.raises(CheckpointFormatError, match="LoRA adapter: merge it"):
        Checkpoint(tmp_path)


def test_index_naming_a_missing_shard(run_fixture, tmp_path, cli) -> None:
    shard_holding(run_fixture.base_dir, Q).unlink()
    rc, err = analyze(cli, run_fixture, tmp_path / "cache")
    assert_clean_failure(rc, err, tmp_path / "cache", "model.safetensors.index.json", "missing model-")


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (("--device", "tpu"), "--device: expected auto, cpu, cuda or cuda:N"),
        (("--modules", "("), "--modules: expected a Python regular expression"),
        (("--modules", "no_such_module"), "none of its"),
        (("--run", "../escape"), "run name '../escape'"),
        (("--steps", "1,a"), "--steps"),
    ],
)
def test_bad_arguments(run_fixture, tmp_path, cli, argv, fragment) -> None:
    rc, err = analyze(cli, run_fixture, tmp_path / "cache", *argv)
    assert_clean_failure(rc, err, tmp_path / "cache", fragment)


def test_errors_share_one_hierarchy() -> None:
    from rlvr_core import errors

    classes = [getattr(errors, n) for n in dir(errors) if n.endswith("Error") and n != "RlvrError"]
    assert classes and all(issubclass(c, RlvrError) for c in classes)


def test_read_tensor_reads_at_the_parsed_offsets_exactly_what_safe_open_reads(tmp_path) -> None:
    """Every dtype, an empty tensor, a scalar: the offsets parsed once give the same tensors as safetensors."""
    import torch
    from safetensors.torch import save_file

    from rlvr_core.readers.checkpoint import Checkpoint

    gen = torch.Generator().manual_seed(0)
    tensors = {
        f"t.{dtype}".replace("torch.", ""): (torch.randn(5, 7, generator=gen) * 100).to(dtype)
        for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                      torch.int16, torch.int8, torch.uint8, torch.bool)
    }  # fmt: skip
    tensors["empty"] = torch.zeros(0, 3)
    tensors["scalar"] = torch.tensor(2.5)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    checkpoint = Checkpoint(tmp_path)
    for name, expected in tensors.items():
        got = checkpoint.read_tensor(name)
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert torch.equal(got, expected) and torch.equal(got, checkpoint.read_tensor_safe_open(name)), name
    with open(tmp_path / "model.safetensors", "r+b") as handle:  # truncated after opening: a clear error
        handle.truncate(checkpoint.tensors["t.float64"].start + 8)
    with pytest.raises(CheckpointFormatError, match="the file was truncated"):
        checkpoint.read_tensor("t.float64")


def test_a_base_of_another_model_type_is_refused_before_any_work(run_fixture, tmp_path, cli) -> None:
    config = run_fixture.base_dir / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "qwen2"}))
    rc, err = analyze(cli, run_fixture, tmp_path / "cache")
    assert_clean_failure(rc, err, tmp_path / "cache", "model type", "'llama'", "'qwen2'", "pass the base model")


def test_compare_refuses_a_base_of_other_shapes_before_the_first_evaluation(run_fixture, tmp_path, cli) -> None:
    from rlvr_core.fixtures import ModelShape, build_run

    other = build_run(tmp_path / "other", ModelShape(hidden=48), steps=(10,))  # the same names, other shapes
    cache = tmp_path / "cache"
    argv = ["compare", run_fixture.run_dir, "--base", other.base_dir, "--dataset", "arithmetic", "--cache", cache]
    rc, _, err = cli(*argv, "--limit", "2")
    assert_clean_failure(rc, err, cache, "(64, 32)", "(64, 48)", "pass the base model")
    assert not (cache / "evals").exists() and not (cache / "variants").exists()  # nothing evaluated or built
