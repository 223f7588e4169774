"""Models named by Hub id, resolved from a local Hugging Face cache laid out as huggingface_hub writes it
(`rlvr_core.fixtures.hf_cache`) with HF_HUB_OFFLINE=1: `rlvr analyze --pair org/rl --base org/base`
analyses a published pair as a one-step run and records the repo and commit; a second pair on the same
base reuses its analysis; a missing id fails with the fix; data roots refuse ids unless allow_hub."""

from __future__ import annotations

import pytest

from rlvr_core.cache import Cache
from rlvr_core.errors import UsageError
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
        with pytest.raises(UsageError) as typo:  # `org/nmae` beside a folder `org`: not a Hub lookup
            resolve_model("org/nmae")
        assert "typo in a local path" in str(typo.value) and "hf://org/nmae" in str(typo.value)
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


class _Hub:
    """A loopback stand-in for the Hub's download endpoints, as huggingface_hub 2.4.0 calls them
    (`hf_api.repo_info`, `list_repo_tree`, `file_download.get_hf_file_metadata` + GET): one model."""

    def __init__(self, repo: str, folder):
        import hashlib

        self.repo, self.commit = repo, hashlib.sha1(repo.encode()).hexdigest()
        self.files = {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}
        self.requests: list[str] = []

    def handler(self):
        import hashlib
        import http.server
        import json

        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                path = self.path.split("?")[0]
                hub.requests.append(f"{self.command} {path}")
                api, resolve = f"/api/models/{hub.repo}/", f"/{hub.repo}/resolve/{hub.commit}/"
                if path.startswith(api + "revision/"):
                    info = {"id": hub.repo, "sha": hub.commit, "siblings": [{"rfilename": n} for n in hub.files]}
                    return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
                if path.startswith(api + "tree/"):
                    tree = [{"type": "file", "path": n, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                            for n, b in hub.files.items()]  # fmt: skip
                    return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
                if path.startswith(resolve) and path[len(resolve) :] in hub.files:
                    body = hub.files[path[len(resolve) :]]
                    tag = f'"{hashlib.sha256(body).hexdigest()}"'
                    return self._send(200, body, {"X-Repo-Commit": hub.commit, "ETag": tag})
                return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"})

            def log_message(self, *args):
                pass

        return Handler


def test_a_hub_model_downloads_from_a_loopback_hub_with_progress(tmp_path) -> None:
    import http.server
    import os
    import subprocess
    import sys
    import threading

    fx = build_run(tmp_path / "fx", ModelShape(n_layers=1), steps=(10,), shards=1)
    hub = _Hub("lab/tiny-rl", fx.step_dirs[10])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), hub.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HUB_CACHE": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}  # fmt: skip
    argv = ["analyze", "--pair", "lab/tiny-rl", "--base", str(fx.base_dir), "--cache", str(tmp_path / "c")]
    try:
        done = subprocess.run([sys.executable, "-m", "rlvr_core", *argv], capture_output=True, text=True, env=env)
        missing = subprocess.run(
            [sys.executable, "-m", "rlvr_core", "analyze", "--pair", "lab/none", "--base", str(fx.base_dir)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Fetching" in done.stderr or "%|" in done.stderr  # huggingface_hub's progress bar
    assert any(r.startswith("GET /lab/tiny-rl/resolve/") and r.endswith(".safetensors") for r in hub.requests)
    snapshot = tmp_path / "hf" / "models--lab--tiny-rl" / "snapshots" / hub.commit
    assert (snapshot / "model.safetensors").read_bytes() == hub.files["model.safetensors"]
    row = Cache(tmp_path / "c").queries().checkpoints().set_index("step").loc[1]
    assert (row["source"], row["revision"]) == ("lab/tiny-rl", hub.commit)
    assert missing.returncode == 2 and "Hub model 'lab/none'" in missing.stderr, missing.stderr
