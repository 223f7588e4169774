"""Publishing folders atomically: build under a hidden temporary name beside the target, then swap it
into place with `os.replace`, so readers see the old folder or the new one, never half of one. Used by
the cache (step and evaluation folders), checkpoint writers and substituted checkpoints.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def publishing(final: Path, tag: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder `.tmp-<tag>-<random>` beside `final`; when the block ends without
    an error it replaces `final` (an older `final` is moved aside to `.old-<tag>-<random>`, then deleted).
    On an error the temporary folder is deleted and `final` is left as it was."""
    final = Path(final)
    tag = tag or final.name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{tag}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.parent / f".old-{tag}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
