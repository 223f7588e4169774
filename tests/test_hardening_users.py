"""A shared server's users: jobs belong to their submitter, text fields have limits, one user cannot fill
the queue, a job that cannot start fails once, read-only mode writes nothing, and the admin is warned of
an exposed header sign-in."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rlvr_core.cache import Cache
from rlvr_core.cache import queue as jobs
from rlvr_core.cli import main, requests
from rlvr_core.errors import UsageError
from rlvr_core.service.worker import WorkerConfig, run_worker

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_free_text_fields_have_a_limit_checked_at_submission(tmp_path):
    with pytest.raises(UsageError, match="analyze run: expected at most 4096 characters, found 5000"):
        requests.submit(tmp_path, requests.AnalyzeRequest(run_dir="/m/r", base="/m/b", run="x" * 5000))
    assert jobs.list_jobs(tmp_path) == []


def test_one_user_cannot_fill_the_queue(tmp_path):
    for i in range(2):
        requests.submit(tmp_path, requests.DemoRequest(seed=i), "ann", max_per_user=2)
    with pytest.raises(UsageError, match="user 'ann': expected at most 2 jobs queued or running, found 2 already"):
        requests.submit(tmp_path, requests.DemoRequest(seed=9), "ann", max_per_user=2)
    assert requests.submit(tmp_path, requests.DemoRequest(seed=9), "bob", max_per_user=2)[1]


def test_only_the_submitter_or_an_admin_cancels_a_job(tmp_path):
    ident, _ = jobs.submit(tmp_path, "demo", ["--quick"], "ann")
    with pytest.raises(UsageError, match="expected a job of yours \\(bob\\) to cancel, found a job of ann"):
        jobs.cancel(tmp_path, ident, "bob", admins=("root",))
    assert jobs.get(tmp_path, ident).state == "queued"
    assert jobs.cancel(tmp_path, ident, "root", admins=("root",)) == "cancelled"


def test_the_jobs_page_offers_cancel_only_on_ones_own_jobs(tmp_path, monkeypatch):
    ident, _ = jobs.submit(tmp_path, "demo", ["--quick", "--out", "![x](http://127.0.0.1:9/p.png)"], "ann")
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path))
    monkeypatch.setenv("RLVR_AUTH", "header")
    for user, buttons in (("bob", []), ("ann", ["Cancel this job"])):
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page("rlvr_dashboard/views/jobs.py")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("rlvr_dashboard.access.user", lambda u=user: u)
            mp.setattr("rlvr_dashboard.access.signed_in", lambda: True)
            at.run()
        assert not at.exception
        assert [b.label for b in at.button] == buttons
        assert "![x](http://127.0.0.1:9/p.png)" in at.code[0].value  # the argv shown as code: plain text
        assert not any("](http" in m.value for m in at.markdown)


def test_a_job_that_cannot_start_fails_once_and_the_worker_goes_on(tmp_path, run_fixture):
    cache = tmp_path / "cache"
    huge = ["--run", "x" * 200_000]  # over the OS's limit for one argument (E2BIG): as queued by an old version
    with sqlite3.connect(jobs.connect(cache).execute("PRAGMA database_list").fetchone()[2]) as con:
        con.execute(
            "INSERT INTO jobs (id, kind, argv, request_key, state, submitted_by, created_at, cwd) VALUES "
            "(?, 'logs', ?, ?, 'queued', 'old', ?, ?)",
            ["bad000000000", json.dumps(["/x", *huge]), uuid.uuid4().hex, time.time() - 10, str(tmp_path)],
        )
    good, _ = jobs.submit(
        cache, "analyze", [str(run_fixture.run_dir), "--base", str(run_fixture.base_dir), "--quiet", "--no-fits"]
    )
    assert run_worker(WorkerConfig(cache=cache, drain=True, poll=0.1)) == 2
    bad = jobs.get(cache, "bad000000000")
    assert bad.state == "failed" and bad.attempt == 1 and "could not start" in bad.error
    assert jobs.get(cache, good).state == "done"


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


@pytest.mark.slow
def test_read_only_mode_writes_nothing_and_write_commands_refuse(tmp_path, run_fixture, monkeypatch, cli):
    cache = tmp_path / "cache"
    assert cli("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir, "--cache", cache, "--quiet")[0] == 0
    monkeypatch.setenv("RLVR_READ_ONLY", "1")
    monkeypatch.setenv("RLVR_CACHE", str(cache))
    before = _snapshot(cache)
    for argv in (
        ("analyze", run_fixture.run_dir, "--base", run_fixture.base_dir),
        ("logs", tmp_path, "--run", "x"),
        ("cancel", "abc"),
        ("worker", "--drain"),
        ("demo", "--quick"),
        ("submit", "demo", "--quick"),
    ):
        rc, _, err = cli(*argv)
        assert rc == 2 and "read-only mode" in err, (argv, err)
    assert cli("runs")[0] == 0 and cli("jobs")[0] == 0
    for page in ("runs", "layers", "spectra", "alignment", "reward", "substitution", "jobs"):
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page(f"rlvr_dashboard/views/{page}.py").run()
        assert not at.exception, page
    assert _snapshot(cache) == before and not Cache(cache).jobs_db.exists()


def test_a_corrupt_queue_shows_an_error_on_the_jobs_page(tmp_path, monkeypatch):
    (tmp_path / "jobs.sqlite").write_bytes(b"garbage" * 1000)
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("rlvr_dashboard/views/jobs.py").run()
    assert not at.exception and "move it aside" in at.error[0].value


def test_serve_warns_when_header_sign_in_listens_beyond_loopback(tmp_path, monkeypatch, capsys):
    from rlvr_core.service import serve

    monkeypatch.setattr(serve, "supervise", lambda children: 0)
    monkeypatch.setenv("RLVR_AUTH", "header")
    assert main(["serve", "--address", "10.1.2.3", "--cache", str(tmp_path), "--workers", "0"]) == 0
    assert "warning: header sign-in while listening on 10.1.2.3" in capsys.readouterr().err
    assert main(["serve", "--address", "127.0.0.1", "--cache", str(tmp_path), "--workers", "0"]) == 0
    assert "warning" not in capsys.readouterr().err
