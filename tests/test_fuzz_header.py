"""Fuzzing the safetensors header check: 2,000 random mutations of a valid step checkpoint's header (and
of its length prefix and size), as the second step of a run whose first step is valid. Every case either
analyses correctly (safetensors itself loads the file, and the cached spectra equal numpy's of what it
loads) or ends in one `error:` line with exit 2 and nothing written, not even the valid first step (the
headers are checked before any work); never a traceback, never another exit status."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rlvr_core.cache import open_cache
from rlvr_core.cli import main

pytestmark = pytest.mark.slow
CASES = 2000
UP, DOWN = "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"


def _valid(tmp_path: Path) -> tuple[Path, Path, bytes]:
    gen = torch.Generator().manual_seed(0)
    tensors = {
        UP: torch.randn(6, 4, generator=gen),
        DOWN: torch.randn(4, 6, generator=gen),
        "model.norm.weight": torch.ones(4),
    }
    base = tmp_path / "base"
    base.mkdir()
    save_file(tensors, str(base / "model.safetensors"), metadata={"format": "pt"})
    step = tmp_path / "step.safetensors"
    save_file(
        {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in tensors.items()},
        str(step),
        metadata={"format": "pt"},
    )
    return base, step, step.read_bytes()


def _mutate(rng: random.Random, header: dict, data: bytes) -> tuple[bytes, bytes | None]:
    """A mutated header (as JSON bytes) and, for some cases, a mutated data section."""
    h = copy.deepcopy(header)
    names = [n for n in h if n != "__metadata__"]
    name = rng.choice(names)
    entry = h[name]
    junk = rng.choice([None, True, -1, 0, 1, 2**63, 2**64 + 5, 1.5, "12", [], {}, [1, 2, 3], "F32", "\u0663"])
    op = rng.randrange(18)
    if op == 0:
        entry.pop(rng.choice(["dtype", "shape", "data_offsets"]))
    elif op == 1:
        entry["dtype"] = rng.choice(["F32", "F16", "BF16", "I8", "F4", "f32", "", junk])
    elif op == 2:
        entry["shape"] = rng.choice([[], [24], [4, 6], [6, 4, 1], [-6, -4], [6, junk], junk, [0, 4]])
    elif op == 3:
        entry["data_offsets"] = [rng.randrange(-8, len(data) + 8), rng.randrange(-8, len(data) + 8)]
    elif op == 4:
        entry["data_offsets"] = rng.choice(
            [[entry["data_offsets"][0]], entry["data_offsets"] + [0], junk, [junk, entry["data_offsets"][1]]]
        )
    elif op == 5:  # swap two tensors' offsets (same sizes: still valid, values swapped)
        other = h[rng.choice(names)]
        entry["data_offsets"], other["data_offsets"] = other["data_offsets"], entry["data_offsets"]
    elif op == 6:  # overlap with the next tensor
        entry["data_offsets"] = [entry["data_offsets"][0] + 4, entry["data_offsets"][1] + 4]
    elif op == 7:
        h["__metadata__"] = rng.choice([{"format": junk}, junk, {"a": "b"}, {"format": "pt", "x": [1]}])
    elif op == 8:
        h.pop("__metadata__", None)
    elif op == 9:
        h[rng.choice(["extra", "model.layers.0.mlp.gate_proj.weight", ""])] = copy.deepcopy(entry)
    elif op == 10:
        h[name] = junk
    elif op == 11:
        h[name + rng.choice(["x", "\u0000", "\n"])] = h.pop(name)
    elif op == 12:
        h.pop(name)
    elif op == 13:
        return json.dumps([h]).encode(), None
    elif op == 14:
        return b"{" * rng.randrange(1, 5000), None
    elif op == 15:
        return json.dumps(h).encode()[: rng.randrange(1, 40)], None
    elif op == 16:
        return json.dumps(h).encode(), data[: rng.randrange(len(data))]
    else:
        return json.dumps(h).encode(), data + bytes(rng.randrange(1, 9))
    return json.dumps(h).encode(), None


def _expected_spectra(step_file: Path, base: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file

    w, b = load_file(str(step_file)), load_file(str(base / "model.safetensors"))
    return {n: np.linalg.svd((w[n].double() - b[n].double()).numpy(), compute_uv=False) for n in (UP, DOWN)}


def test_header_mutations_either_analyse_correctly_or_are_refused_cleanly(tmp_path):
    base, step_file, original = _valid(tmp_path)
    (length,) = struct.unpack("<Q", original[:8])
    header, data = json.loads(original[8 : 8 + length]), original[8 + length :]
    rng = random.Random(0)
    outcomes = {"analysed": 0, "refused": 0}
    for case in range(CASES):
        raw, new_data = _mutate(rng, header, data)
        prefix = struct.pack("<Q", len(raw)) if rng.random() > 0.05 else struct.pack("<Q", rng.randrange(2**64))
        run = tmp_path / f"run{case}"
        (run / "checkpoint-1").mkdir(parents=True)
        (run / "checkpoint-2").mkdir(parents=True)
        (run / "checkpoint-1" / "model.safetensors").write_bytes(original)  # valid: analysed first, if at all
        shard = run / "checkpoint-2" / "model.safetensors"
        shard.write_bytes(prefix + raw + (data if new_data is None else new_data))
        cache = tmp_path / f"cache{case}"
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(
                [
                    "analyze",
                    str(run),
                    "--base",
                    str(base),
                    "--cache",
                    str(cache),
                    "--no-fits",
                    "--no-alignment",
                    "--no-base",
                    "--quiet",
                    "--modules",
                    "mlp",
                ]
            )
        said = err.getvalue().strip().splitlines()
        if rc == 0:
            outcomes["analysed"] += 1
            expected = _expected_spectra(shard, base)  # safetensors itself must load what we analysed
            rows = (
                open_cache(cache).execute("SELECT tensor, sv FROM spectra WHERE target = 'dW' AND step = 2").fetchall()
            )
            assert {t for t, _ in rows} == {UP, DOWN}, case
            for tensor, sv in rows:
                np.testing.assert_allclose(sv, expected[tensor], rtol=1e-9, atol=1e-12, err_msg=f"case {case}")
        else:
            outcomes["refused"] += 1
            assert rc == 2 and len(said) == 1 and said[0].startswith("error: "), (case, rc, said)
            assert not list(cache.rglob("*.parquet")), case
    assert outcomes["analysed"] > 50 and outcomes["refused"] > 1000, outcomes


HOSTILE = [
    ("model.layers.0.mlp.experts.gate_up_proj", (2**40, 0, 16)),
    ("model.layers.0.mlp.experts.gate_up_proj", (10**6, 0, 16)),
    ("model.layers.0.mlp.experts.down_proj", (5000, 4, 6)),  # more experts than the documented cap
    ("model.layers.0.mlp.experts.down_proj", (8, 0, 6)),
    ("model.layers.\uff12.mlp.up_proj.weight", (6, 4)),  # a full-width digit
    ("model.layers.\u0663.mlp.up_proj.weight", (6, 4)),  # an Arabic-Indic digit
    ("model.layers.99999999999999999999.mlp.up_proj.weight", (6, 4)),
    ("model.layers.0.mlp.experts.9223372036854775808.up_proj.weight", (6, 4)),
]


@pytest.mark.parametrize(("name", "shape"), HOSTILE, ids=[f"{n[13:40]}-{s[0]}" for n, s in HOSTILE])
def test_huge_counts_and_odd_indices_are_refused_in_time(tmp_path, name, shape):
    """A few kilobytes that declare a million experts (or an index past int64, or non-ASCII digits) end in
    one error line within seconds, nothing written: they are checked before anything is enumerated."""
    import signal

    gen = torch.Generator().manual_seed(0)
    tensors = {UP: torch.randn(6, 4, generator=gen), DOWN: torch.randn(4, 6, generator=gen)}
    tensors[name] = torch.zeros(shape)  # zero bytes where a dimension is 0: the header check alone passes
    for folder in ("base", "run/checkpoint-1"):
        (tmp_path / folder).mkdir(parents=True)
        save_file(tensors, str(tmp_path / folder / "model.safetensors"))
    cache = tmp_path / "cache"
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"{name} {shape} hung")))
    signal.alarm(30)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["analyze", str(tmp_path / "run"), "--base", str(tmp_path / "base"), "--cache", str(cache),
                       "--no-fits", "--quiet"])  # fmt: skip
    finally:
        signal.alarm(0)
    said = err.getvalue().strip().splitlines()
    assert rc == 2 and len(said) == 1 and said[0].startswith("error: "), said
    assert name in said[0] and not list(cache.rglob("*.parquet"))
