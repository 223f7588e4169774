"""What every `rlvr` command shares: the `--cache` / `--config` flags, settings resolved from them, and the
progress bar on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cache import Cache
from ..system.settings import CACHE_ENV, CONFIG_ENV, DEFAULT_CACHE, Settings, load_settings


def step_number(text: str) -> int:
    """argparse type of a training step: ASCII digits, 0 to 2^63 - 1 (a step the cache's int64 column holds)."""
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        raise argparse.ArgumentTypeError(f"expected a step from 0 to 2^63 - 1, found {text!r}")
    return int(text)


def add_cache_flags(parser: argparse.ArgumentParser, cache_help: str | None = None) -> None:
    """`--cache DIR` and `--config FILE`, with the precedence every command shares."""
    parser.add_argument(
        "--cache",
        help=cache_help or f"cache folder (default: ${CACHE_ENV}, the config file's `cache`, else ./{DEFAULT_CACHE})",
    )
    add_config_flag(parser)


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"TOML settings file (default: ${CONFIG_ENV}); see docs/reference/settings.md")


def settings_of(args: argparse.Namespace, **flags: object) -> Settings:
    """The settings for this command: its flags, then the environment, then the config file, then defaults."""
    return load_settings(getattr(args, "config", None), flags={"cache": getattr(args, "cache", None), **flags})


def model_dir(args: argparse.Namespace, text: str) -> Path:
    """The local folder of a model argument: a folder as given, or a Hub id (`org/name[@rev]`,
    `hf://...`) resolved in the HF cache or downloaded (`readers.hub`), as the settings allow."""
    from ..readers.hub import resolve_model

    settings = settings_of(args)
    allow = not settings.data_roots or settings.allow_hub
    return resolve_model(text, allow_hub=allow, cache_dir=settings.hub_cache or None).path


def cache_of(args: argparse.Namespace) -> Cache:
    """The cache this command works on (see `settings_of`)."""
    return Cache(settings_of(args).cache)


class ProgressBar:
    """tqdm on stderr: `done` of `total` units, with a short message and an ETA."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._bar: Any = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        if message:
            self._bar.set_postfix_str(message[-60:], refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
