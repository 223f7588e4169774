"""The one error hierarchy of RLVR Lens.

Every error a user can cause (a bad path, a corrupt shard, mismatched checkpoints, a bad flag) is an
`RlvrError`. Its message always names four things, in this order, so a one-line CLI report is enough to
act on:

    <subject>: expected <what the tool needs>, found <what it found>. Fix: <what to do>

`subject` is the file, folder or tensor at fault. The CLI prints `error: <message>` and exits 2.
This module is the bottom of the import graph: it imports nothing from the package.
"""

from __future__ import annotations


class RlvrError(Exception):
    """Base class: a problem with the user's input or environment, reported in one line."""

    def __init__(self, subject: str, expected: str, found: str, fix: str) -> None:
        self.subject = subject
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(f"{subject}: expected {expected}, found {found}. Fix: {fix}")

    def __reduce__(self):
        """Pickled with its four parts, so an error raised in a worker process arrives whole."""
        return (type(self), (self.subject, self.expected, self.found, self.fix))


class CheckpointFormatError(RlvrError):
    """A checkpoint folder or weight file that cannot be read (missing, truncated, not safetensors)."""


class TensorMismatchError(RlvrError):
    """Base and step checkpoints disagree: a tensor missing on one side or of another shape."""


class RunLayoutError(RlvrError):
    """A run folder whose checkpoints cannot be found or are not usable as they are (e.g. unmerged verl)."""


class CacheError(RlvrError):
    """The cache folder cannot be written or holds something the tool did not write."""


class UsageError(RlvrError):
    """A bad argument: an unknown device, a malformed --steps list, a run name that is not a safe name."""


class ConfigError(RlvrError):
    """A settings file or environment override that cannot be used (unknown key, wrong type, bad value)."""


class OutputFolderError(RlvrError):
    """An output folder or file the tool will not replace: an input or its parent, the cache, `/`, a folder
    of files the tool did not write, or an existing file without the tool's mark."""


class PathNotAllowedError(RlvrError):
    """A path outside the configured data roots (directly, through `..`, or through a symlink)."""


class WorkerError(RlvrError):
    """A worker process of the analysis died under it (killed, or out of memory)."""


class MissingExtraError(RlvrError):
    """A command needs an optional part of the package that is not installed (`pip install rlvr-lens[EXTRA]`)."""
