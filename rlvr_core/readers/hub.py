"""Models named by Hugging Face Hub id: `org/name[@revision]` or `hf://org/name[@revision]`, wherever a
model folder is accepted (`--base`, `--pair`, `rlvr substitute`, `rlvr compare`, `rlvr evaluate`).

`resolve_model(text)` returns a local folder: an existing path as it is; a Hub id through
`huggingface_hub.snapshot_download`, which looks in the local HF cache first (`HF_HOME`, `HF_HUB_CACHE`;
with `HF_HUB_OFFLINE=1` only there) and otherwise downloads only the weights (`*.safetensors`, the
index), config and tokenizer files, with a progress bar. A text that is an existing path is never taken
for an id. The folder it returns is the snapshot `.../models--org--name/snapshots/<commit>/`, so the
commit can be read back from any analysed path (`revision_of`): the `checkpoints` view records it.
A missing model, a gated one without a token and offline mode with nothing cached are each one error
saying what to do. Plain Python until an id must be resolved (huggingface_hub is imported then).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

HUB_ID = re.compile(r"^(?P<scheme>hf://)?(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
FILES = [
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "vocab*",
    "merges.txt",
    "*.model",
    "chat_template*",
]
"""What is downloaded of a Hub model: weights, their index, config and tokenizer (never .bin or .pt)."""
_SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<commit>[0-9a-f]{40})(?:/|$)")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, and which Hub repository and commit they came from (None: a folder)."""

    path: Path
    repo: str | None = None
    revision: str | None = None


def is_hub_id(text: str, roots: Iterable[Path] = ()) -> bool:
    """True for `hf://org/name[@rev]`, and for `org/name[@rev]` that is not an existing path: neither from
    the working folder nor under any of `roots` (the data roots, where a relative `legit/base` is a folder,
    never a Hub repository of that name)."""
    match = HUB_ID.match(text)
    if match is None:
        return False
    return match["scheme"] is not None or not any(_exists(where / text) for where in (Path(), *roots))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a NUL byte: no such path
        return False


def resolve_model(text: str, allow_hub: bool = True, cache_dir: str | None = None) -> ModelSource:
    """The local folder of `text` (a folder, or a Hub id resolved as the module docstring says)."""
    if not is_hub_id(text):
        return ModelSource(Path(text))
    match = HUB_ID.match(text)
    assert match is not None
    repo, revision = match["repo"], match["revision"]
    first = text.split("/", 1)[0]
    if match["scheme"] is None and _exists(Path(first)):  # `run/nope` beside a folder `run`: a path's typo
        raise UsageError(
            f"model '{text}'", "a model folder, or a Hub id (org/name)",
            f"no such folder, though '{first}/' exists here: a typo in a local path, not a Hub model",
            f"check the path under '{first}/' (for a Hub model of that name write hf://{text})",
        )  # fmt: skip
    if not allow_hub:
        raise UsageError(
            f"model '{text}'", "a folder under the data roots", "a Hub id, which this server does not allow",
            "ask the admin to set allow_hub = true (and hub_cache) in the server's settings, or pass a folder",
        )  # fmt: skip
    from huggingface_hub import errors as hub
    from huggingface_hub import snapshot_download

    # read now, not when huggingface_hub was imported (a long-lived process may have imported it earlier)
    home = os.environ.get("HF_HOME")
    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or (os.path.join(home, "hub") if home else None)
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    try:
        folder = snapshot_download(
            repo, revision=revision, allow_patterns=FILES, cache_dir=cache_dir, local_files_only=offline
        )
    except hub.GatedRepoError:
        raise UsageError(
            f"Hub model '{repo}'", "a model you may download", "a gated model, and no token with access",
            "accept its terms on its Hub page, then `hf auth login` or set HF_TOKEN",
        ) from None  # fmt: skip
    except hub.RevisionNotFoundError:
        raise UsageError(
            f"Hub model '{repo}'", f"revision '{revision}'", "no such branch, tag or commit",
            "check the revision after '@', or leave it out for main",
        ) from None  # fmt: skip
    except hub.RepositoryNotFoundError:
        raise UsageError(
            f"Hub model '{repo}'", "a model repository on the Hub",
            "no such repository (or a private one without a token)",
            "check the id (org/name); for a private model `hf auth login` or set HF_TOKEN",
        ) from None  # fmt: skip
    except (hub.LocalEntryNotFoundError, hub.HfHubHTTPError, OSError, ValueError) as exc:
        raise UsageError(
            f"Hub model '{repo}'", "the model in the local Hugging Face cache, or a reachable Hub",
            f"neither ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
            "download it once where the Hub is reachable (`hf download " + repo + "`), or check HF_HOME / "
            "HF_HUB_CACHE, or unset HF_HUB_OFFLINE",
        ) from None  # fmt: skip
    path = Path(str(folder))
    found = revision_of(path)
    return ModelSource(path, repo, found[1] if found else revision)


def revision_of(path: str | Path) -> tuple[str, str] | None:
    """(repo id, commit) of a folder inside the Hugging Face cache (`models--org--name/snapshots/<commit>`),
    else None."""
    match = _SNAPSHOT.search(Path(path).as_posix())
    return (f"{match['org']}/{match['name']}", match["commit"]) if match else None
