"""Typed job requests: one field per flag of their command, one argv derivation, checked by the command's
own parser where they are submitted; jobs queued by earlier versions (hand-written argv) still run."""

from __future__ import annotations

import dataclasses

import pytest

from rlvr_core.cache import Cache
from rlvr_core.cache import queue as jobs
from rlvr_core.cli import build_parser, main, requests
from rlvr_core.errors import UsageError
from rlvr_core.service.worker import WorkerConfig, run_worker


@pytest.mark.parametrize("kind", sorted(requests.REQUESTS))
def test_each_request_has_one_field_per_flag_of_its_command(kind):
    _, parsers = build_parser()
    dests = {a.dest for a in parsers[kind]._actions if a.dest not in ("help",)}
    fields = {f.name for f in dataclasses.fields(requests.REQUESTS[kind])}
    assert fields == dests
    assert set(requests.REQUESTS) == {*jobs.KINDS, "watch"}  # every job kind, and the registered watch


@pytest.mark.parametrize(
    "request_",
    [
        requests.AnalyzeRequest(
            run_dir="/m/run",
            base="/m/base",
            steps="10,20",
            checkpoint=("5=/a", "6=/b"),
            quiet=True,
            include_embeddings=True,
            topk=4,
        ),
        requests.CompareRequest(
            run_dir="/m/run",
            base="/m/base",
            dataset="math500,gsm8k",
            ranks="1,4",
            temperature=0.6,
            n=4,
            limit=10,
            mode="norm-matched",
        ),
        requests.DemoRequest(quick=True, seed=3, substitute_every=5),
        requests.LogsRequest(path="/m/run/trainer_state.json", run="x", test="eval_reward"),
    ],
)
def test_argv_round_trips_through_the_parser(request_):
    assert requests.from_argv(request_.kind, request_.argv()) == request_


def test_a_request_the_command_rejects_is_refused_at_submission(tmp_path):
    bad = requests.AnalyzeRequest(run_dir="/m/run", base="/m/base", triplets="fast")
    with pytest.raises(UsageError) as info:
        requests.submit(tmp_path, bad)
    message = str(info.value)
    assert message.startswith("rlvr analyze /m/run --base /m/base --triplets fast: expected arguments `rlvr analyze`")
    assert "invalid choice: 'fast'" in message and "Fix: see `rlvr analyze --help`" in message
    assert not Cache(tmp_path).jobs_db.exists()


def test_rlvr_submit_refuses_a_bad_flag_with_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "submit",
                "compare",
                "/m/run",
                "--base",
                "/m/base",
                "--dataset",
                "x",
                "--n",
                "many",
                "--cache",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: rlvr compare") and "argument --n: invalid int value: 'many'" in err
    assert len(err.strip().splitlines()) == 1 and not Cache(tmp_path).jobs_db.exists()


def test_identical_requests_share_one_job_whatever_the_flag_order(tmp_path, capsys):
    first = ["submit", "analyze", "/m/run", "--base", "/m/base", "--quiet", "--run", "a", "--cache", str(tmp_path)]
    second = ["submit", "analyze", "--run", "a", "/m/run", "--quiet", "--base", "/m/base", "--cache", str(tmp_path)]
    assert main(first) == 0 and main(second) == 0
    ids = capsys.readouterr().out.split()
    assert ids[0] == ids[1] and len(jobs.list_jobs(tmp_path)) == 1


def test_a_job_queued_by_an_earlier_version_still_runs(tmp_path, run_fixture):
    """Earlier versions queued the submitted argv as typed (`rlvr submit analyze ARGS`), flags in any order."""
    cache = tmp_path / "cache"
    ident, _ = jobs.submit(
        cache,
        "analyze",
        [str(run_fixture.run_dir), "--base", str(run_fixture.base_dir), "--quiet", "--no-fits", "--run", "old"],
    )
    assert run_worker(WorkerConfig(cache=cache, drain=True, poll=0.1)) == 1
    assert jobs.get(cache, ident).state == "done"
    assert Cache(cache).queries().steps("old") == [0, 10, 20]
