"""Substitution and evaluation on the demo run: both modes, AlphaRL's formula, untouched tensors,
cached triplets, base/full/rank-1 evaluated on CPU and the recovery stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr_core.cache import store
from rlvr_core.readers.checkpoint import Checkpoint
from rlvr_core.readers.naming import LINEAR, classify_tensor

pytestmark = pytest.mark.slow


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_substitute_both_modes(quick_demo, cli, tmp_path):
    out, cache, _ = quick_demo
    step, base = out / "runs" / "demo-grpo" / "checkpoint-20", out / "base"
    rc, msg, err = cli("substitute", step, "--base", base, "--mode", "norm-matched", "--out", tmp_path / "nm")
    assert rc == 0, err
    rc, msg, err = cli("substitute", step, "--base", base, "--out", tmp_path / "tr-cached", "--cache", cache)
    assert rc == 0 and "21 from cached triplets" in msg
    rc, _, _ = cli("substitute", step, "--base", base, "--out", tmp_path / "tr", "--keep", "step")
    assert rc == 0
    w_step, w_base = _weights(step), _weights(base)
    nm, tr, tr_cached = _weights(tmp_path / "nm"), _weights(tmp_path / "tr"), _weights(tmp_path / "tr-cached")
    linear = [n for n, t in w_step.items() if classify_tensor(n, tuple(t.shape)).kind == LINEAR]
    assert len(linear) == 21
    for name in linear:
        d = w_step[name].double() - w_base[name].double()
        u, s, vh = torch.linalg.svd(d)
        alpharl = w_base[name].double() + torch.linalg.norm(d) * torch.outer(u[:, 0], vh[0])  # ||dW||_F u1 v1^T
        assert torch.allclose(nm[name].double(), alpharl, atol=1e-6, rtol=0), name
        truncated = w_base[name].double() + s[0] * torch.outer(u[:, 0], vh[0])
        assert torch.allclose(tr[name].double(), truncated, atol=1e-6, rtol=0), name
        assert torch.allclose(tr_cached[name].double(), truncated, atol=1e-6, rtol=0), name
    for name in set(w_step) - set(linear):  # embeddings, norms, lm_head
        assert torch.equal(nm[name], w_base[name]), name
        assert torch.equal(tr[name], w_step[name]), name
    recipe = json.loads((tmp_path / "nm" / "rlvr_substitution.json").read_text())
    assert (recipe["run"], recipe["step"], recipe["rank"], recipe["mode"], recipe["keep"]) == (
        "demo-grpo",
        20,
        1,
        "norm-matched",
        "base",
    )
    assert {"config.json", "tokenizer.json", "generation_config.json"} <= {p.name for p in (tmp_path / "nm").iterdir()}
    assert "trainer_state.json" not in {p.name for p in (tmp_path / "nm").iterdir()}


def test_substitute_modules_regex_and_errors(quick_demo, cli, tmp_path):
    out, _, _ = quick_demo
    step, base = out / "runs" / "demo-grpo" / "checkpoint-20", out / "base"
    rc, msg, _ = cli("substitute", step, "--base", base, "--modules", r"mlp\.", "--out", tmp_path / "mlp")
    assert rc == 0 and "9 weights" in msg
    w, w_base = _weights(tmp_path / "mlp"), _weights(base)
    assert torch.equal(w["model.layers.0.self_attn.q_proj.weight"], w_base["model.layers.0.self_attn.q_proj.weight"])
    assert not torch.equal(w["model.layers.0.mlp.up_proj.weight"], w_base["model.layers.0.mlp.up_proj.weight"])
    rc, _, err = cli("substitute", step, "--base", base, "--mode", "lowrank", "--out", tmp_path / "bad")
    assert rc == 2 and "--mode: expected one of truncated, norm-matched, found 'lowrank'" in err
    from rlvr_core.fixtures import ModelShape, build_run

    other = build_run(tmp_path / "other", ModelShape(arch="llama"), steps=(10,), layout="trl")
    rc, _, err = cli("substitute", step, "--base", other.base_dir, "--out", tmp_path / "bad")
    assert rc == 2 and "Fix: pass the base model this run started from" in err
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))


def test_compare_base_full_rank1_on_cpu_stores_recovery(quick_demo, cli, tmp_path):
    out, _, _ = quick_demo
    cache = tmp_path / "cache"
    args = (
        "compare",
        out / "runs" / "demo-grpo",
        "--base",
        out / "base",
        "--dataset",
        "arithmetic",
        "--limit",
        "300",
        "--max-new-tokens",
        "5",
        "--batch-size",
        "300",
        "--cache",
        cache,
        "--device",
        "cpu",
    )
    rc, text, err = cli(*args)
    assert rc == 0, err
    con = store.open_cache(cache)
    rows = con.execute(
        "SELECT step, rank, acc_base, acc_full, acc_rank, recovery, recovery_low, recovery_high, recovery_note, "
        "gain_low FROM recovery ORDER BY step"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(10, 1), (20, 1)]
    for _, _, acc_base, acc_full, acc_rank, recovery, low, high, note, gain_low in rows:
        if recovery is None:  # no real gain over these 300 problems: the reason is stored instead
            assert note and (acc_full <= acc_base or gain_low <= 0), note
        else:
            assert recovery == pytest.approx((acc_rank - acc_base) / (acc_full - acc_base))
            assert low <= recovery <= high and note is None and gain_low > 0
    evals = con.execute("SELECT variant, step, n_problems, accuracy FROM evaluations ORDER BY variant, step").fetchall()
    assert [(v, s, n) for v, s, n, _ in evals] == [
        ("base", 0, 300),
        ("full", 10, 300),
        ("full", 20, 300),
        ("rank-1", 10, 300),
        ("rank-1", 20, 300),
    ]
    n_samples = con.execute("SELECT count(*), sum(correct::int) FROM eval_samples").fetchone()
    assert n_samples[0] == 1500
    # The logged greedy accuracy of the final checkpoint on these 300 problems matches the evaluation's.
    samples = con.execute(
        "SELECT s.completion, s.gold, s.correct FROM eval_samples s JOIN evaluations e USING (eval_id) "
        "WHERE e.variant = 'full' AND e.step = 20"
    ).fetchall()
    assert all(c == (comp.strip() == gold) for comp, gold, c in samples)
    # A rerun is answered from the cache: same ids, no new evaluation folders.
    before = sorted(p.name for p in (cache / "evals").iterdir())
    assert cli(*args)[0] == 0
    assert sorted(p.name for p in (cache / "evals").iterdir()) == before
    variant = cache / "variants" / "demo-grpo" / "step-20-rank1-truncated-keepbase"
    assert Checkpoint(variant).tensors and (variant / "rlvr_substitution.json").is_file()


SLOW_MERGES = """
import os, time
from pathlib import Path
import rlvr_core.cache.store as store

_barrier = Path(os.environ["RLVR_TEST_BARRIER"])
_merge, _write = store.Cache.merge_run_rows, store._write_parquet


def merge_run_rows(self, *args, **kwargs):  # both processes enter the merge together
    _barrier.mkdir(exist_ok=True)
    (_barrier / str(os.getpid())).touch()
    deadline = time.time() + 300
    while len(list(_barrier.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    return _merge(self, *args, **kwargs)


def write_parquet(path, table):  # a slow write: a merge without the lock would lose the other's rows
    if path.name == "recovery.parquet":
        time.sleep(1.5)
    return _write(path, table)


store.Cache.merge_run_rows = merge_run_rows
store._write_parquet = write_parquet
"""


def test_two_concurrent_compares_of_one_run_keep_all_their_recovery_rows(quick_demo, tmp_path):
    """Two real `rlvr compare` processes on one run, forced (by a sitecustomize hook in the test only) to
    read-merge-write the run's recovery file at the same moment: the run's lock keeps both rows."""
    out, _, _ = quick_demo
    hooks, cache = tmp_path / "hooks", tmp_path / "cache"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_MERGES)
    env = {
        **os.environ,
        "PYTHONPATH": f"{hooks}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "RLVR_TEST_BARRIER": str(tmp_path / "barrier"),
    }
    common = [
        sys.executable,
        "-m",
        "rlvr_core",
        "compare",
        str(out / "runs" / "demo-grpo"),
        "--base",
        str(out / "base"),
        "--dataset",
        "arithmetic",
        "--limit",
        "20",
        "--max-new-tokens",
        "5",
        "--steps",
        "20",
        "--cache",
        str(cache),
        "--device",
        "cpu",
    ]
    procs = [
        subprocess.Popen(common + ["--ranks", rank], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in ("1", "2")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    assert len(list((tmp_path / "barrier").iterdir())) == 2  # both really merged at the same time
    rows = store.open_cache(cache).execute("SELECT step, rank FROM recovery ORDER BY rank").fetchall()
    assert rows == [(20, 1), (20, 2)]


def test_every_flag_of_the_evaluation_commands_has_help_and_the_modes_are_the_substitutions() -> None:
    from rlvr_core.cli import build_parser
    from rlvr_core.cli.evaluate import MODES
    from rlvr_core.math.rank_k import MODES as SUBSTITUTION_MODES

    assert MODES == SUBSTITUTION_MODES
    _, commands = build_parser()
    for name in ("substitute", "evaluate", "compare"):
        for action in commands[name]._actions:
            assert action.help, (name, action.option_strings or action.dest)


def test_a_model_folder_without_a_tokenizer_is_refused_with_the_fix_not_a_bug_report(tmp_path, cli) -> None:
    from rlvr_core.fixtures import ModelShape, build_run

    bare = build_run(tmp_path / "run", ModelShape(n_layers=1), steps=(10,), layout="trl").base_dir  # weights only
    rc, _, err = cli("evaluate", bare, "--dataset", "arithmetic", "--limit", "1", "--cache", tmp_path / "c")
    assert rc == 2 and err.startswith(f"error: {bare}: expected a tokenizer") and "copy the base model's" in err
    assert "a bug in RLVR Lens" not in err and not (tmp_path / "c" / "evals").exists()


def test_compare_reports_its_progress_per_evaluation_and_within_one(quick_demo, tmp_path) -> None:
    """Every step of the run (none named): the fraction grows to 1, moving within each evaluation too."""
    from rlvr_core.pipelines.compare import CompareConfig, compare
    from rlvr_core.pipelines.generation import Sampling
    from rlvr_core.readers.datasets import load_dataset

    out, _, _ = quick_demo
    seen: list[tuple[str | None, float | None]] = []
    config = CompareConfig(
        run_dir=out / "runs" / "demo-grpo", base_dir=out / "base", datasets=[load_dataset("arithmetic", None, 6)],
        cache=tmp_path / "c", sampling=Sampling(max_new_tokens=4, batch_size=2), device="cpu",
    )  # fmt: skip
    compare(config, lambda message, fraction=None: seen.append((message, fraction)))
    fractions = [f for _, f in seen]
    assert all(f is not None for f in fractions) and fractions == sorted(fractions) and fractions[-1] == 1.0
    logged = [m for m, _ in seen if m]
    assert len(logged) == 5  # base, and full and rank-1 at steps 10 and 20
    assert any(m is None and 0 < f < 1 for m, f in seen)  # within an evaluation
