"""`rlvr demo --quick` end to end (the real console entry point in a subprocess), then what it wrote:
checkpoints that transformers loads, a log the user-facing reader parses, a cache that `rlvr runs` lists,
a final test accuracy above the base's, rank-1 weights in the periodic-substitution run."""

from __future__ import annotations

import json

import pytest
import torch

from rlvr_core.cache import store
from rlvr_core.math import arithmetic
from rlvr_core.readers.trainlog import pick_metrics, read_log

pytestmark = pytest.mark.slow
RUNS = ("demo-grpo", "demo-grpo-rank1-k10")


def test_demo_prints_its_numbers_and_fills_the_cache(quick_demo, cli):
    out, cache, stdout = quick_demo
    assert "base test accuracy" in stdout and "demo built in" in stdout
    rc, listing, _ = cli("runs", "--cache", cache)
    assert rc == 0
    for run in RUNS:
        line = next(line for line in listing.splitlines() if line.startswith(run + "\t"))
        assert "steps 0,10,20" in line
    con = store.open_cache(cache)
    n_align = dict(con.execute("SELECT run, count(*) FROM alignment GROUP BY run").fetchall())
    assert set(n_align) == set(RUNS)
    names = {r[0] for r in con.execute("SELECT DISTINCT name FROM metrics").fetchall()}
    assert {"reward", "eval_accuracy", "clip_ratio"} <= names
    summary = con.execute(
        "SELECT reward_metric, test_metric, log_format FROM run_summary WHERE run = ?", [RUNS[0]]
    ).fetchone()
    assert summary == ("reward", "eval_accuracy", "trl")


def test_checkpoints_load_with_transformers_and_reproduce_the_logged_accuracy(quick_demo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _ = quick_demo
    folders = [out / "base"] + sorted((out / "runs").glob("demo-grpo*/checkpoint-*"))
    assert len(folders) == 5
    for folder in folders:
        assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
            p.name for p in folder.iterdir()
        }
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
        assert type(model).__name__ == "LlamaForCausalLM"
        ids = tokenizer("123+456=")["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and tokenizer.decode(ids, skip_special_tokens=True) == "123+456="
    # Re-grade the final checkpoint with transformers' own generate() on the shipped test set.
    final = out / "runs" / RUNS[0] / "checkpoint-20"
    tokenizer, model = AutoTokenizer.from_pretrained(final), AutoModelForCausalLM.from_pretrained(final)
    rows = [json.loads(line) for line in (out / "data" / "arithmetic_test.jsonl").read_text().splitlines()]
    ids = torch.tensor([tokenizer(r["problem"])["input_ids"] for r in rows])
    with torch.no_grad():
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False)
    texts = tokenizer.batch_decode(gen[:, ids.shape[1] :], skip_special_tokens=True)
    acc = sum(arithmetic.verify(t, r["answer"]) for t, r in zip(texts, rows)) / len(rows)
    logged = read_log(final / "trainer_state.json").series("eval_accuracy")
    assert acc == pytest.approx(logged[20], abs=0.003)


def test_final_test_accuracy_beats_the_base_and_the_log_parses(quick_demo):
    out, _, _ = quick_demo
    for run in RUNS:
        log = read_log(out / "runs" / run)
        assert log.format == "trl" and log.path.parent.name == "checkpoint-20"
        reward, test = pick_metrics(log, None, None)
        assert (reward, test) == ("reward", "eval_accuracy")
        acc = log.series(test)
        assert sorted(acc) == [0, 10, 20]
        assert acc[20] > acc[0], f"{run}: final test accuracy {acc[20]} does not beat the base's {acc[0]}"
        assert sorted(log.series(reward)) == list(range(1, 21))
        assert 0.0 < min(log.series(reward).values()) <= max(log.series(reward).values()) < 1.0
    report = json.loads((out / "demo_report.json").read_text())
    assert 0.3 <= report["base_accuracy"] <= 0.55
    assert report["timings"]["total_s"] > 0 and len(report["rank1"]) == 2


def test_periodic_substitution_leaves_rank_one_updates_at_its_steps(quick_demo):
    _, cache, _ = quick_demo
    con = store.open_cache(cache)
    rows = con.execute(
        "SELECT run, step, min(rank1_energy), max(rank1_energy) FROM layers WHERE target = 'dW' "
        "GROUP BY run, step ORDER BY run, step"
    ).fetchall()
    energy = {(run, step): (lo, hi) for run, step, lo, hi in rows}
    for step in (10, 20):  # k = 10: the substituted run's weights are W_base + rank-1 at these steps
        assert energy[(RUNS[1], step)][0] > 1 - 1e-6
        assert energy[(RUNS[0], step)][0] < 0.99  # the normal run's updates are not rank 1


def test_if_missing_skips_a_built_demo_and_bad_flags_are_usage_errors(quick_demo, cli, tmp_path):
    out, cache, _ = quick_demo
    rc, stdout, _ = cli("demo", "--quick", "--if-missing", "--out", out, "--cache", cache)
    assert rc == 0 and "demo already built" in stdout
    rc, _, err = cli("demo", "--quick", "--threads", "0", "--out", tmp_path / "d")
    assert rc == 2 and "expected --threads, --substitute-every and --steps of at least 1" in err
    assert not (tmp_path / "d").exists()


def test_the_report_is_valid_json_and_the_cli_counts_steps_as_the_pages_do(quick_demo, cli):
    out, cache, _ = quick_demo

    def refuse(constant):
        raise AssertionError(f"bare {constant} in demo_report.json")

    json.loads((out / "demo_report.json").read_text(), parse_constant=refuse)
    rc, listing, _ = cli("runs", "--cache", cache)
    assert "demo-grpo\t2 step(s) + the base (step 0)\tsteps 0,10,20" in listing


def test_the_demo_reports_a_fraction_that_only_grows():
    from rlvr_core.demo.build import SHARES, stage_progress

    seen: list[float] = []
    progress = lambda message, fraction=None: seen.append(fraction)  # noqa: E731
    for stage in SHARES:
        report = stage_progress(progress, stage)
        for done in (0.0, 0.5, 1.0):
            report("working", done)
    assert seen == sorted(seen) and seen[0] == 0.0 and abs(seen[-1] - 1.0) < 1e-9
