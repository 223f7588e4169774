"""Models named by Hub id, resolved from a local Hugging Face cache laid out as huggingface_hub writes it
(`rlvr_core.fixtures.hf_cache`) with HF_HUB_OFFLINE=1: `rlvr analyze --pair org/rl --base org/base`
analyses a published pair as a one-step run and records the repo and commit; a second pair on the same
base reuses its analysis; a missing id fails with the fix; data roots refuse ids unless allow_hub."""

from __future__ import annotations

import pytest

from rlvr_core.cache import Cache
from rlvr_core.fixtures import ModelShape, build_run
from rlvr_core.fixtures.hf_cache import put_in_hf_cache
from rlvr_core.readers.hub import is_hub_id, resolve_model, revision_of


@pytest.fixture
def hub(tmp_path, monkeypatch):
    fx = build_run(tmp_path / "fx", ModelShape(n_layers=2), steps=(10, 20), shards=1)
    cache = tmp_path / "hf" / "hub"
    commits = {
        "lab/tiny-base": put_in_hf_cache(cache, "lab/tiny-base", fx.base_dir),
        "lab/tiny-rl": put_in_hf_cache(cache, "lab/tiny-rl", fx.step_dirs[20]),
        "lab/tiny-rl-early": put_in_hf_cache(cache, "lab/tiny-rl-early", fx.step_dirs[10]),
    }
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache, commits, fx


def test_hub_ids_are_told_from_folders(tmp_path) -> None:
    assert is_hub_id("Qwen/Qwen2.5-Math-7B") and is_hub_id("hf://Qwen/Qwen2.5-Math-7B@main")
    assert is_hub_id("org/name@0123456789abcdef0123456789abcdef01234567")
    assert not is_hub_id("/models/base") and not is_hub_id("base") and not is_hub_id("a/b/c")
    (tmp_path / "org" / "name").mkdir(parents=True)
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert not is_hub_id("org/name") and is_hub_id("hf://org/name")  # an existing folder wins
    finally:
        os.chdir(here)
    snapshot = "/x/models--Qwen--Qwen2.5-7B/snapshots/" + "a" * 40
    assert revision_of(snapshot + "/") == ("Qwen/Qwen2.5-7B", "a" * 40) and revision_of("/models/base") is None


def test_a_published_pair_analyses_from_the_hf_cache_offline(hub, tmp_path, cli) -> None:
    _, commits, fx = hub
    assert resolve_model("hf://lab/tiny-base@main").revision == commits["lab/tiny-base"]
    cache = tmp_path / "cache"
    code, out, err = cli("analyze", "--pair", "lab/tiny-rl", "--base", "lab/tiny-base", "--cache", cache, "--quiet")
    assert code == 0, err
    rows = Cache(cache).queries().checkpoints().set_index("step")
    assert list(rows.run.unique()) == ["tiny-rl"] and list(rows.index) == [0, 1]
    assert (rows.loc[1, "source"], rows.loc[1, "revision"]) == ("lab/tiny-rl", commits["lab/tiny-rl"])
    assert (rows.loc[0, "source"], rows.loc[0, "revision"]) == ("lab/tiny-base", commits["lab/tiny-base"])
    argv = ["analyze", "--pair", "hf://lab/tiny-rl-early", "--base", "lab/tiny-base", "--step", "10"]
    code, out, err = cli(*argv, "--run", "early", "--cache", cache, "--quiet")
    assert code == 0, err
    assert "analysed steps [0, 10]" in out
    early = Cache(cache).queries().checkpoints()
    early = early[early.run == "early"].set_index("step")
    assert early.loc[0, "path"] == rows.loc[0, "path"]
    assert early.loc[0, "analyzed_at"] == rows.loc[0, "analyzed_at"]  # the base's analysis, reused


def test_a_missing_model_and_refused_ids_say_what_to_do(hub, tmp_path, cli, monkeypatch) -> None:
    code, _, err = cli("analyze", "--pair", "lab/nope", "--base", "lab/tiny-base", "--cache", tmp_path / "c")
    assert code == 2 and "Hub model 'lab/nope'" in err and "HF_HUB_OFFLINE" in err and "hf download lab/nope" in err
    monkeypatch.setenv("RLVR_DATA_ROOTS", str(tmp_path))
    code, _, err = cli("analyze", "--pair", "lab/tiny-rl", "--base", "lab/tiny-base", "--cache", tmp_path / "c")
    assert code == 2 and "a Hub id, which this server does not allow" in err and "allow_hub = true" in err
    monkeypatch.setenv("RLVR_ALLOW_HUB", "1")
    monkeypatch.setenv("RLVR_HUB_CACHE", str(hub[0]))
    code, _, err = cli("analyze", "--pair", "lab/tiny-rl", "--base", "lab/tiny-base", "--cache", tmp_path / "c")
    assert code == 0, err
