"""The cache's owner: its layout, atomic publishing under concurrent writers, locked merges by several
processes, and the old import paths that users' scripts still use."""

from __future__ import annotations

import multiprocessing
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlvr_core.cache import EVAL_SCHEMAS, RUN_SCHEMAS, SCHEMAS, Cache, open_cache, publishing
from rlvr_core.cache.views import _DUCK_TYPES
from rlvr_core.errors import UsageError


def test_layout_is_computed_in_one_place(tmp_path):
    cache = Cache(tmp_path)
    assert cache.step_dir("grpo", 10) == tmp_path / "runs" / "grpo" / "step-10"
    assert cache.eval_dir("abc123") == tmp_path / "evals" / "abc123"
    assert (
        cache.variant_dir("grpo", 20, 1, "truncated", 1.0, "base")
        == tmp_path / "variants" / "grpo" / "step-20-rank1-truncated-keepbase"
    )
    assert (
        cache.variant_dir("grpo", 20, 4, "norm-matched", 0.5, "step").name == "step-20-rank4-norm-matched-a0.5-keepstep"
    )
    assert cache.jobs_db == tmp_path / "jobs.sqlite" and cache.job_log("0a1b") == tmp_path / "jobs" / "0a1b.log"
    with pytest.raises(UsageError, match="run name '../x'"):
        cache.run_dir("../x")


def test_two_writers_of_one_folder_both_publish_whole_folders(tmp_path):
    final, errors = tmp_path / "evals" / "same", []

    def write(tag: str) -> None:
        try:
            for i in range(150):
                with publishing(final) as tmp:
                    (tmp / "a.txt").write_text(f"{tag}{i}")
                    (tmp / "b.txt").write_text(f"{tag}{i}")
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (final / "a.txt").read_text() == (final / "b.txt").read_text()  # one writer's folder, whole
    assert sorted(p.name for p in final.parent.iterdir()) == ["same"]  # nothing left beside it


def _merge_many(root: str, tag: str, count: int) -> None:
    cache = Cache(root)
    for i in range(count):
        cache.merge_run_rows(
            "r",
            "recovery",
            [{"run": "r", "step": i, "rank": 1, "mode": tag, "dataset": "d"}],
            ("step", "rank", "mode", "dataset"),
        )


def test_merges_by_two_processes_keep_every_row(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_merge_many, args=(str(tmp_path), tag, 40)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    rows = pq.read_table(tmp_path / "runs" / "r" / "recovery.parquet").to_pylist()
    assert sorted((r["mode"], r["step"]) for r in rows) == sorted((t, i) for t in "ab" for i in range(40))
    assert open_cache(tmp_path).execute("SELECT count(*) FROM recovery").fetchone()[0] == 80


def test_a_merge_replaces_rows_with_its_own_keys_only(tmp_path):
    cache, key = Cache(tmp_path), ("step", "rank", "mode", "dataset")
    row = {"run": "r", "step": 1, "rank": 1, "mode": "truncated", "dataset": "d", "acc_rank": 0.1}
    cache.merge_run_rows("r", "recovery", [row, {**row, "step": 2}], key)
    cache.merge_run_rows("r", "recovery", [{**row, "acc_rank": 0.9}], key)
    rows = cache.queries().recovery()
    assert rows[["step", "acc_rank"]].values.tolist() == [[1, 0.9], [2, 0.1]]


def test_the_demo_package_gives_the_builds_names_without_importing_torch():
    from rlvr_core.demo import DemoConfig
    from rlvr_core.demo.build import DemoConfig as Built

    assert DemoConfig is Built


def test_a_cache_written_before_a_column_was_added_still_opens(tmp_path):
    """Files written by an older version lack the newer columns: the views give NULL there."""
    old_schema = pa.schema([f for f in RUN_SCHEMAS["run_summary"] if f.name not in ("test_metric_note", "n_log_files")])
    folder = tmp_path / "runs" / "old"
    folder.mkdir(parents=True)
    row = {"run": "old", "reward_metric": "reward", "test_metric": "eval_accuracy", "spearman": 0.5}
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema), folder / "run_summary.parquet")
    con = open_cache(tmp_path)
    assert con.execute("SELECT run, test_metric, test_metric_note, n_log_files FROM run_summary").fetchall() == [
        ("old", "eval_accuracy", None, None)
    ]
    assert Cache(tmp_path).queries().run_summaries()["run"].tolist() == ["old"]
    types = {str(f.type) for group in (SCHEMAS, RUN_SCHEMAS, EVAL_SCHEMAS) for s in group.values() for f in s}
    assert types <= set(_DUCK_TYPES)
