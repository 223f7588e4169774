"""Shared fixtures: tiny real checkpoints written by rlvr_core.fixtures, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr_core.cli import main
from rlvr_core.fixtures import ModelShape, build_run


@pytest.fixture
def run_fixture(tmp_path: Path):
    """A Llama-named base + TRL run with steps 10 and 20 (bf16, 2 shards), planted rank-1 updates."""
    return build_run(tmp_path / "data", ModelShape(arch="llama"), steps=(10, 20), layout="trl")


@pytest.fixture
def cli(capsys):
    """Run `rlvr ...` in-process; returns (exit code, stdout, stderr)."""
    def call(*argv: str) -> tuple[int, str, str]:
        rc = main([str(a) for a in argv])
        out = capsys.readouterr()
        return rc, out.out, out.err
    return call


def parquet_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.parquet")) if cache.exists() else []
