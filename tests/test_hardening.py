"""Hostile inputs, each reproduced: writers that would destroy user data, paths that would leave the data
roots, corrupt files that would take the tool down, headers and logs that would crash it, and processes a
kill would orphan. Each ends in one `error:` line (exit 2) with nothing changed, or is survived."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rlvr_core.cache import Cache, open_cache
from rlvr_core.cache.atomic import WRITER_FILE, remove_leftovers
from rlvr_core.fixtures import ModelShape, build_run

from .conftest import parquet_files


def checksums(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders (the 'changes nothing' check)."""
    out = {}
    for folder in folders:
        for file in sorted(Path(folder).rglob("*")):
            if file.is_file():
                out[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


# ---- writers never replace what they did not create ----------------------------------------------------------


@pytest.mark.parametrize("where", ["run folder", "base", "step", "cache", "root", "cwd", "foreign"])
def test_substitute_never_replaces_an_input_its_parent_the_cache_or_foreign_files(
    where, run_fixture, tmp_path, cli, monkeypatch
):
    fx, cache = run_fixture, tmp_path / "cache"
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--quiet", "--no-fits")[0] == 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my thesis")
    monkeypatch.chdir(foreign)
    out = {
        "run folder": fx.run_dir,
        "base": fx.base_dir,
        "step": fx.step_dirs[10],
        "cache": cache,
        "root": Path("/"),
        "cwd": Path("."),
        "foreign": foreign,
    }[where]
    before = checksums(fx.base_dir, fx.run_dir, cache, foreign)
    rc, _, err = cli("substitute", fx.step_dirs[10], "--base", fx.base_dir, "--cache", cache, "--out", out)
    one_line_error(
        rc, err, "expected an empty folder" if where in ("cwd", "foreign") else "a folder the tool may replace"
    )
    assert checksums(fx.base_dir, fx.run_dir, cache, foreign) == before


def test_substitute_replaces_its_own_output(run_fixture, tmp_path, cli):
    fx, out = run_fixture, tmp_path / "variant"
    for _ in range(2):
        rc, _, err = cli("substitute", fx.step_dirs[10], "--base", fx.base_dir, "--out", out)
        assert rc == 0, err
    assert (out / "rlvr_substitution.json").is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_demo_refuses_to_delete_folders_it_did_not_write(tmp_path, cli):
    out = tmp_path / "project"
    (out / "data").mkdir(parents=True)
    (out / "data" / "experiment.csv").write_text("precious")
    before = checksums(out)
    rc, _, err = cli("demo", "--quick", "--out", out, "--cache", tmp_path / "cache")
    one_line_error(rc, err, "data", "a folder of other files")
    assert checksums(out) == before


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    import fcntl

    dead, live = tmp_path / ".tmp-out-deadbeef", tmp_path / ".tmp-out-0123abcd"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
        (folder / WRITER_FILE).write_text(f"RLVR Lens tmp folder {folder.name.removeprefix('.tmp-')}\n")
    (tmp_path / ".lock-out-deadbeef").write_text("RLVR Lens lock folder out-deadbeef\n")  # nobody holds it
    with open(tmp_path / ".lock-out-0123abcd", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a live writer
        assert remove_leftovers(tmp_path) == [dead]
    assert live.exists() and not dead.exists() and not (tmp_path / ".lock-out-deadbeef").exists()


@pytest.mark.slow
def test_a_killed_substitute_leaves_nothing_behind_after_the_next_run(run_fixture, tmp_path):
    fx, out = run_fixture, tmp_path / "variant"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = (
        "import sys, time; from rlvr_core.pipelines import substitute as s; real = s._write_shards\n"
        "def slow(*a, **k):\n    r = real(*a, **k); print('written', flush=True); time.sleep(60); return r\n"
        "s._write_shards = slow\nfrom rlvr_core.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "substitute",
            str(fx.step_dirs[10]),
            "--base",
            str(fx.base_dir),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert sorted(p.name[:5] for p in tmp_path.iterdir() if p.name.startswith(".")) == [".lock", ".tmp-"]
    assert (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rlvr_core",
                "substitute",
                str(fx.step_dirs[10]),
                "--base",
                str(fx.base_dir),
                "--out",
                str(out),
            ],
            capture_output=True,
            env=env,
        ).returncode
        == 0
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ---- the data roots hold all the way down ---------------------------------------------------------------------


@pytest.fixture
def rooted(tmp_path, monkeypatch):
    """A run under the data root /models and a secret folder outside it."""
    root, secret = tmp_path / "models", tmp_path / "secret"
    fx = build_run(root / "team", ModelShape(n_layers=1), steps=(10,), shards=1)
    secret.mkdir()
    monkeypatch.setenv("RLVR_DATA_ROOTS", str(root))
    return fx, root, secret


def test_a_symlinked_checkpoint_inside_a_root_cannot_lead_outside(rooted, tmp_path, cli):
    fx, root, secret = rooted
    outside = build_run(secret / "x", ModelShape(n_layers=1), steps=(20,), shards=1)
    (fx.run_dir / "checkpoint-20").symlink_to(outside.step_dirs[20])
    rc, _, err = cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", tmp_path / "c")
    one_line_error(rc, err, "expected a file under the data roots", str(outside.step_dirs[20]))
    assert parquet_files(tmp_path / "c") == []


@pytest.mark.parametrize("shard", ["absolute", "dotdot"])
def test_an_index_naming_a_shard_outside_is_refused(shard, rooted, tmp_path, cli):
    from safetensors import safe_open

    fx, root, secret = rooted
    step = fx.step_dirs[10]
    stolen = secret / "stolen.safetensors"
    os.replace(step / "model.safetensors", stolen)
    with safe_open(str(stolen), "pt") as handle:
        names = list(handle.keys())
    target = str(stolen) if shard == "absolute" else os.path.relpath(stolen, step)
    (step / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(names, target)}))
    rc, _, err = cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", tmp_path / "c")
    one_line_error(rc, err, "shard file names in the checkpoint's own folder")
    assert parquet_files(tmp_path / "c") == []


def test_a_base_made_of_symlinks_and_a_symlinked_log_are_refused(rooted, tmp_path, cli):
    fx, root, secret = rooted
    private = build_run(secret / "p", ModelShape(n_layers=1), steps=(5,), shards=1)
    fake_base = root / "base-copy"
    fake_base.mkdir()
    for item in private.base_dir.iterdir():
        (fake_base / item.name).symlink_to(item)
    rc, _, err = cli("analyze", fx.run_dir, "--base", fake_base, "--cache", tmp_path / "c")
    one_line_error(rc, err, "expected a file under the data roots")
    (secret / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 1, "reward": 1.0}]}))
    logs = root / "logs"
    logs.mkdir()
    (logs / "trainer_state.json").symlink_to(secret / "trainer_state.json")
    rc, _, err = cli("logs", logs, "--run", "x", "--cache", tmp_path / "c")
    one_line_error(rc, err, "expected a file under the data roots")
    assert parquet_files(tmp_path / "c") == []


def test_a_dataset_outside_the_roots_is_refused_by_the_job(rooted, tmp_path, cli):
    fx, root, secret = rooted
    (secret / "private.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    rc, _, err = cli("evaluate", fx.step_dirs[10], "--dataset", secret / "private.jsonl", "--cache", tmp_path / "c")
    one_line_error(rc, err, "expected a file under the data roots")


@pytest.mark.slow
def test_under_data_roots_compare_reads_back_the_variant_it_wrote_into_the_cache(
    quick_demo, tmp_path, cli, monkeypatch
):
    """The cache is not a data root, yet `rlvr compare` must read the rank-k checkpoint it just wrote there: in
    the Docker image (data roots /models, /opt/rlvr/demo, /benchmarks; cache /data/cache) a rank-1 evaluation
    queued from the page failed with "/data/cache/variants/...: expected a file under the data roots"."""
    import shutil

    out, cache = quick_demo[0], tmp_path / "cache"
    shutil.copytree(quick_demo[1], cache)
    monkeypatch.setenv("RLVR_DATA_ROOTS", str(out))
    limits = ("--limit", "4", "--max-new-tokens", "8", "--run", "demo-grpo", "--cache", cache)
    rc, _, err = cli("compare", out / "runs" / "demo-grpo", "--base", out / "base", "--steps", "20", "--dataset",
                     "arithmetic", *limits)  # fmt: skip
    assert rc == 0, err
    assert (Cache(cache).variants_root / "demo-grpo").is_dir()
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"problem": "1+1", "answer": "2"}\n')
    rc, _, err = cli("evaluate", out / "base", "--dataset", secret, "--cache", cache)  # the rest stays guarded
    one_line_error(rc, err, "expected a file under the data roots")


# ---- one corrupt file never takes the tool down ---------------------------------------------------------------


@pytest.mark.slow
def test_a_truncated_cache_file_marks_its_step_broken_and_analyze_repairs_it(run_fixture, tmp_path, cli):
    fx, cache = run_fixture, tmp_path / "cache"
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--quiet", "--run", "r")[0] == 0
    layers = cache / "runs" / "r" / "step-20" / "layers.parquet"
    layers.write_bytes(layers.read_bytes()[:100])
    rc, out, _ = cli("runs", "--cache", cache)
    assert rc == 0 and "r\t1 step(s) + the base (step 0)\tsteps 0,10" in out and "BROKEN" in out and str(layers) in out
    con = open_cache(cache)
    assert con.execute("SELECT DISTINCT step FROM layers ORDER BY step").fetchall() == [(0,), (10,)]
    assert con.execute("SELECT step, view FROM broken").fetchall() == [(20, "layers")]
    rc, out, _ = cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--quiet", "--run", "r")
    assert rc == 0 and "analysed steps [20]" in out
    assert open_cache(cache).execute("SELECT count(*) FROM broken").fetchone()[0] == 0


def test_a_killed_evaluation_write_is_never_read(tmp_path):
    import pyarrow as pa

    from rlvr_core.cache import EVAL_SCHEMAS

    cache = Cache(tmp_path)
    row = pa.Table.from_pylist([{"eval_id": "abc", "accuracy": 0.5}], schema=EVAL_SCHEMAS["evaluations"])
    cache.write_eval("abc", {"evaluations": row})
    leftover = tmp_path / "evals" / ".tmp-abc-deadbeef"
    leftover.mkdir()
    (tmp_path / "evals" / "abc" / "evaluations.parquet").rename(tmp_path / "copy.parquet")
    (tmp_path / "copy.parquet").rename(leftover / "evaluations.parquet")
    cache.write_eval("abc", {"evaluations": row})
    assert open_cache(tmp_path).execute("SELECT count(*) FROM evaluations").fetchone()[0] == 1


def test_a_corrupt_job_queue_is_one_clear_error(tmp_path, cli):
    (tmp_path / "jobs.sqlite").write_bytes(b"this is not a database" * 100)
    rc, _, err = cli("jobs", "--cache", tmp_path)
    one_line_error(rc, err, "jobs.sqlite", "move it aside")
    rc, _, err = cli("submit", "demo", "--quick", "--cache", tmp_path)
    one_line_error(rc, err, "jobs.sqlite")


# ---- validation before any write ------------------------------------------------------------------------------


def _tiny_run(root: Path, edit=None, base_edit=None) -> tuple[Path, Path]:
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "model.layers.0.mlp.up_proj.weight": torch.randn(16, 8, generator=gen),
        "model.layers.0.mlp.down_proj.weight": torch.randn(8, 16, generator=gen),
        "model.norm.weight": torch.ones(8),
    }
    base, step = root / "base", root / "run" / "checkpoint-1"
    base.mkdir(parents=True)
    step.mkdir(parents=True)
    base_tensors = {k: v.clone() for k, v in tensors.items()}
    if base_edit:
        base_edit(base_tensors)
    save_file(base_tensors, str(base / "model.safetensors"))
    step_tensors = {k: v + 0.01 for k, v in tensors.items()}
    if edit:
        edit(step_tensors)
    save_file(step_tensors, str(step / "model.safetensors"))
    return base, root / "run"


@pytest.mark.parametrize("shape", [(128,), (16, 8, 1), ()])
def test_a_linear_weight_that_changes_rank_is_an_error(shape, tmp_path, cli):
    base, run = _tiny_run(tmp_path, lambda t: t.update({"model.layers.0.mlp.up_proj.weight": torch.zeros(shape)}))
    rc, _, err = cli("analyze", run, "--base", base, "--cache", tmp_path / "c")
    one_line_error(rc, err, "tensor 'model.layers.0.mlp.up_proj.weight'", "(16, 8)")
    assert parquet_files(tmp_path / "c") == []


@pytest.mark.parametrize("where", ["step", "base"])
def test_nan_or_inf_is_an_error_naming_tensor_and_step_or_recorded_when_allowed(where, tmp_path, cli):
    def poison(t):
        t["model.layers.0.mlp.down_proj.weight"][3, 4] = float("nan") if where == "step" else float("inf")

    base, run = _tiny_run(tmp_path, poison if where == "step" else None, poison if where == "base" else None)
    rc, _, err = cli("analyze", run, "--base", base, "--cache", tmp_path / "c", "--no-base")
    one_line_error(
        rc,
        err,
        "tensor 'model.layers.0.mlp.down_proj.weight' at step 1",
        f"in the {where}'s weight",
        "--allow-nonfinite",
    )
    assert parquet_files(tmp_path / "c") == []
    rc, _, err = cli("analyze", run, "--base", base, "--cache", tmp_path / "c", "--no-base", "--allow-nonfinite")
    assert rc == 0, err
    rows = (
        open_cache(tmp_path / "c")
        .execute("SELECT tensor, analyzed, nonfinite FROM tensors WHERE kind = 'linear' ORDER BY tensor")
        .fetchall()
    )
    assert rows == [
        ("model.layers.0.mlp.down_proj.weight", False, True),
        ("model.layers.0.mlp.up_proj.weight", True, False),
    ]


@pytest.mark.parametrize("name", ["checkpoint-٣", "checkpoint-3\n", "checkpoint-99999999999999999999"])
def test_step_folder_names_are_ascii_digits_in_int64(name, tmp_path, cli):
    base, run = _tiny_run(tmp_path)
    os.replace(run / "checkpoint-1", run / name)
    rc, _, err = cli("analyze", run, "--base", base, "--cache", tmp_path / "c")
    one_line_error(rc, err, "expected checkpoint folders")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"step": 9223372036854775808, "reward": 1}\n', "an integer step from 0 to 2^63 - 1"),
        ("[" * 100000 + "]" * 100000 + "\n", "one JSON object per line"),
        (b'{"step": 1, "reward": 1}\n\xff\xfe\n', "invalid JSON at line 2"),
    ],
)
def test_malformed_logs_are_one_line_errors(content, fragment, tmp_path, cli):
    path = tmp_path / "log.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, _, err = cli("logs", path, "--run", "x", "--cache", tmp_path / "c")
    one_line_error(rc, err, fragment)
    state = tmp_path / "trainer_state.json"
    state.write_bytes(b'{"log_history": [{"step": 1, "reward": 0.\xff}]}')
    one_line_error(*cli("logs", state, "--run", "x", "--cache", tmp_path / "c")[::2], "a UTF-8 text file")


def test_csv_logs_drop_nan_and_inf(tmp_path, cli):
    path = tmp_path / "export.csv"
    path.write_text("Step,r - train/reward\n1,0.1\n2,nan\n3,inf\n4,0.4\n")
    assert cli("logs", path, "--run", "x", "--cache", tmp_path / "c")[0] == 0
    con = open_cache(tmp_path / "c")
    assert con.execute("SELECT step, value FROM metrics ORDER BY step").fetchall() == [(1, 0.1), (4, 0.4)]
    assert con.execute("SELECT reward_peak_step FROM run_summary").fetchone()[0] == 4


@pytest.mark.slow
def test_alignment_skipped_once_is_recomputed_by_the_next_analysis(run_fixture, tmp_path, cli):
    fx, cache = run_fixture, tmp_path / "c"
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--steps", "10", "--quiet")[0] == 0
    assert cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--quiet", "--no-alignment")[0] == 0

    def steps():
        return [s for (s,) in open_cache(cache).execute("SELECT DISTINCT step FROM alignment ORDER BY step").fetchall()]

    assert steps() == [10]  # stale: step 20 was analysed without alignment
    rc, out, _ = cli("analyze", fx.run_dir, "--base", fx.base_dir, "--cache", cache, "--quiet")
    assert rc == 0 and "skipped (cached, unchanged) [0, 10, 20]" in out and steps() == [10, 20]


# ---- no orphans -----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["threads", "processes"])  # the fit process; the matrix worker processes
def test_the_fit_process_dies_with_a_killed_analysis(engine, tmp_path):
    fx = build_run(tmp_path / "d", ModelShape(n_layers=4, hidden=64, intermediate=128), steps=(10, 20, 30))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlvr_core",
            "analyze",
            str(fx.run_dir),
            "--base",
            str(fx.base_dir),
            "--cache",
            str(tmp_path / "c"),
            "--quiet",
            "--engine",
            engine,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    deadline = time.time() + 60
    while not children and time.time() < deadline:
        children = [int(p) for p in _children(proc.pid)]
        time.sleep(0.05)
    assert children, "the fit process never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(c) for c in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(c) for c in children)


def _children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return out.split()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
