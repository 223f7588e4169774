"""Reading Hugging Face checkpoints one tensor at a time.

A checkpoint is a folder holding `model.safetensors`, or shards listed in `model.safetensors.index.json`
(`weight_map`: tensor name -> shard file). `Checkpoint(path)` reads and validates only the safetensors
headers (the 8-byte length plus the JSON table of names, dtypes, shapes and byte offsets), so opening a
15 GB model costs milliseconds; `read_tensor(name)` then loads one tensor at the offsets parsed there
(`read_matrix(role)` one matrix, one expert of a fused expert tensor read alone).
Header validation catches a truncated file (a tensor whose bytes end past the end of the file) and a file
that is not safetensors at all before any work is done.

The fingerprint hashes every header, the index file, and each file's size and mtime: an unchanged
checkpoint keeps its fingerprint, and a rewritten one gets a new one. Torch is imported only to read a
tensor, so the dashboard can list checkpoints without it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointFormatError, TensorMismatchError
from ..system.dataroots import guard
from ..system.files import read_regular
from .naming import MAX_EXPERTS, TensorRole, fused_problem, index_problem, roles_of
from .safetensors_header import read_header

if TYPE_CHECKING:  # pragma: no cover
    import torch

SINGLE_FILE = "model.safetensors"
_RESAVE_ADVICE = "re-save the checkpoint with save_pretrained (or fix the tensor names and shapes)"
INDEX_FILE = "model.safetensors.index.json"
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


@functools.cache
def _torch_dtypes() -> dict[str, torch.dtype]:
    """safetensors dtype code -> torch dtype (torch is imported only to read a tensor)."""
    import torch

    return {
        "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
        "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
        "BOOL": torch.bool,
    }  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the safetensors header describes it."""

    name: str
    dtype: str
    """safetensors dtype code: `F32`, `F16`, `BF16`, ..."""
    shape: tuple[int, ...]
    file: Path
    start: int = -1
    """Where the tensor's bytes start in `file` (8 + header length + its data offset); -1: unknown."""
    end: int = -1
    """Where they end (exclusive)."""


def dtype_code(dtype: object) -> str:
    """The safetensors code (`F32`, `BF16`, ...) of a torch dtype, as every reader records it."""
    name = str(dtype).removeprefix("torch.")
    return {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "float64": "F64"}.get(name, name)


def stat_fingerprint(files: Iterable[Path]) -> str:
    """A fingerprint from each file's name, size and mtime (readers of formats without a header to hash)."""
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}:".encode())
    return digest.hexdigest()[:24]


def matrix_view(stored: torch.Tensor, role: TensorRole) -> torch.Tensor:
    """The out x in matrix of `role` as a view into its whole stored tensor (one expert's slice of a fused
    tensor, transposed where stored in x out): writing into it writes into `stored`, so a rewritten
    matrix goes back into the stored layout (`rlvr substitute`, `rlvr predict`)."""
    return _oriented(stored[role.fused.index] if role.fused else stored, role)


def _oriented(t: torch.Tensor, role: TensorRole) -> torch.Tensor:
    """`t` (a stored 2-D tensor, or one expert's slice) as `role`'s out x in matrix: transposed, then rows."""
    if role.transposed:
        t = t.T
    if role.fused is not None:
        start, stop, step = role.fused.rows
        t = t[start:stop:step]
    return t


def has_weights(folder: Path) -> bool:
    """True when `folder` holds a single-file or sharded safetensors checkpoint."""
    return (folder / SINGLE_FILE).is_file() or (folder / INDEX_FILE).is_file()


class Checkpoint:
    """A validated safetensors checkpoint folder; tensors are read on demand, one at a time. Subclasses
    read other formats behind the same interface (`readers.fsdp`, `readers.dcp`; `readers.formats` picks)."""

    source = "safetensors"
    """Where the weights come from (recorded with every analysed checkpoint): `safetensors` (a Hugging Face
    folder), `fsdp-shards` (verl's per-rank training files), `dcp` (a torch.distributed.checkpoint)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_dir = self.path
        """The folder holding config.json (verl's shards: their `huggingface/` folder)."""
        files, index_bytes = _weight_files(self.path)
        self.files = files
        self.tensors: dict[str, TensorInfo] = {}
        digest = hashlib.sha256(index_bytes)
        for file in files:
            header_bytes, header = read_header(file)
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}:".encode())
            digest.update(header_bytes)
            data = 8 + len(header_bytes)  # the data section starts after the length prefix and the header
            for name, entry in header.items():
                if name == "__metadata__":
                    continue
                if name in self.tensors:
                    raise CheckpointFormatError(
                        f"{file}",
                        "each tensor in one shard",
                        f"'{name}' also in {self.tensors[name].file.name}",
                        "rewrite the checkpoint with save_pretrained(safe_serialization=True)",
                    )
                begin, finish = entry["data_offsets"]
                self.tensors[name] = TensorInfo(
                    name, entry["dtype"], tuple(entry["shape"]), file, data + begin, data + finish
                )
        self.fingerprint = digest.hexdigest()[:24]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """tensor name -> stored shape, for `check_same_tensors`."""
        return {name: info.shape for name, info in self.tensors.items()}

    @functools.cached_property
    def config(self) -> dict:
        """The folder's config.json ({} without a readable one)."""
        try:
            value = json.loads(read_regular(self.config_dir / "config.json", CheckpointFormatError))
        except (OSError, ValueError, CheckpointFormatError):
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def model_type(self) -> str | None:
        """`model_type` of the folder's config.json (None without one): it tells fused expert layouts apart."""
        value = self.config.get("model_type")
        return value if isinstance(value, str) else None

    @property
    def max_experts(self) -> int:
        """The most experts a fused tensor may hold: the config's count (`num_experts`, `num_local_experts`,
        `n_routed_experts`), never above `naming.MAX_EXPERTS`; that cap without a count."""
        for key in ("num_experts", "num_local_experts", "n_routed_experts"):
            value = self.config.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return min(value, MAX_EXPERTS)
        return MAX_EXPERTS

    def roles(self) -> list[tuple[TensorRole, TensorInfo]]:
        """Every matrix the checkpoint stores, labelled, with its stored tensor (fused 3-D expert tensors
        give one role per expert and projection; see `naming.fused_roles`). Indices and declared expert
        counts are checked first (`naming.index_problem`, `naming.fused_problem`), and a matrix named twice
        (a fused tensor beside the same experts stored one by one) is an error, not a duplicate row."""
        for name, info in self.tensors.items():
            problem = index_problem(name) or fused_problem(name, info.shape, self.max_experts)
            if problem:
                raise CheckpointFormatError(
                    f"{info.file} tensor '{name}'", "layer/expert indices in ASCII digits below 2^63 and at most "
                    f"{self.max_experts} experts of non-empty matrices", problem, _RESAVE_ADVICE,
                )  # fmt: skip
        out: dict[str, tuple[TensorRole, TensorInfo]] = {}
        for name, info in self.tensors.items():
            for role in roles_of(name, info.shape, self.model_type):
                if role.name in out:
                    raise CheckpointFormatError(
                        f"{info.file} tensor '{name}'", f"one stored tensor for the matrix '{role.name}'",
                        f"it also in '{out[role.name][0].stored}'",
                        "keep one layout of the experts: fused 3-D tensors or one tensor per expert",
                    )  # fmt: skip
                out[role.name] = (role, info)
        return list(out.values())

    def read_matrix(self, role: TensorRole) -> torch.Tensor:
        """The matrix of `role`, out x in (transposed from GPT-2 `Conv1D` or gpt-oss storage); for a fused
        expert only that expert's bytes are read."""
        if role.fused is None:
            return _oriented(self.read_tensor(role.name), role)
        return _oriented(self.read_tensor(role.fused.source, index=role.fused.index), role)

    def roles_by_tensor(self) -> dict[str, list[TensorRole]]:
        """stored tensor name -> the matrices it holds (one, or one per expert and projection if fused)."""
        found: dict[str, list[TensorRole]] = {}
        for role, info in self.roles():
            found.setdefault(info.name, []).append(role)
        return found

    def read_tensor(self, name: str, index: int | None = None) -> torch.Tensor:
        """Load one tensor (CPU, stored dtype) without mapping the rest of the shard: its bytes are read at
        the offsets the header parsed in `__init__` gave, so no read parses a header again (re-opening
        with `safe_open` per tensor re-parsed the whole header each time: quadratic in tensors per shard).
        With `index`, only `tensor[index]` (one slice along the first axis) is read."""
        import torch

        info = self.tensors[name]
        dtype = _torch_dtypes().get(info.dtype)
        if dtype is None or info.start < 0:
            whole = self.read_tensor_safe_open(name)
            return whole if index is None else whole[index].clone()
        start, shape, count = info.start, info.shape, info.end - info.start
        if index is not None:
            if not 0 <= index < shape[0]:
                raise IndexError(f"tensor '{name}' has {shape[0]} slices, not {index + 1}")
            shape, count = shape[1:], count // shape[0]
            start += index * count
        try:
            with open(info.file, "rb") as handle:
                handle.seek(start)
                data = bytearray(handle.read(count))
        except OSError as exc:
            raise CheckpointFormatError(
                f"{info.file} tensor '{name}'", "a readable safetensors tensor", f"{type(exc).__name__}: {exc}",
                "check the file (it may have been moved or truncated since it was opened)",
            ) from None  # fmt: skip
        if len(data) != count:
            raise CheckpointFormatError(
                f"{info.file} tensor '{name}'", f"{count} bytes", f"{len(data)} (the file was truncated)",
                "re-save the checkpoint",
            )  # fmt: skip
        if count == 0:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(shape)

    def read_tensor_safe_open(self, name: str) -> torch.Tensor:
        """Load one tensor through `safetensors.safe_open` (parses the shard's header on every call): the
        fallback for dtypes `read_tensor` does not map, and the baseline of `bench/headers.py`."""
        from safetensors import safe_open

        info = self.tensors[name]
        try:
            with safe_open(str(info.file), framework="pt") as handle:
                return handle.get_tensor(name)
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointFormatError(
                f"{info.file} tensor '{name}'",
                "a readable safetensors tensor",
                f"{type(exc).__name__}: {exc}",
                "re-copy or re-save this checkpoint",
            ) from exc


_BASE_FIX = "pass the base model this run started from"


def check_same_tensors(
    base: Mapping[str, tuple[int, ...]],
    other: Mapping[str, tuple[int, ...]],
    names: Iterable[str],
    base_where: str,
    other_where: str,
    other_label: str = "step's",
) -> None:
    """The one base-vs-step check: each of `names` (tensors of `other`: a step checkpoint, a model being
    trained) exists in the base with the same shape. Shapes are name -> tuple mappings (`Checkpoint.shapes`,
    or a model's parameters). Raises TensorMismatchError naming the tensor, both shapes and where."""
    for name in names:
        shape = tuple(other[name])
        if name not in base:
            raise TensorMismatchError(
                f"tensor '{name}'",
                f"present in the base {base_where}",
                f"no such tensor there; {other_where} has it with shape {shape}",
                _BASE_FIX,
            )
        if tuple(base[name]) != shape:
            raise TensorMismatchError(
                f"tensor '{name}'",
                f"shape {shape} (the {other_label}) in {other_where}",
                f"shape {tuple(base[name])} in the base {base_where}",
                _BASE_FIX,
            )


def check_same_model(base: Checkpoint, step: Checkpoint) -> None:
    """The base is the same kind of model as the step: the same `model_type` in config.json (when both
    say), most of the step's weight matrices in the base, and those with the same shape. Cheap (headers
    and config only): run before any work, so a wrong `--base` fails at once, not after hours of work."""
    if base.model_type and step.model_type and base.model_type != step.model_type:
        raise TensorMismatchError(
            f"model type of {base.path}",
            f"'{step.model_type}', as the step {step.path} (config.json's model_type)",
            f"'{base.model_type}'",
            _BASE_FIX,
        )
    matrices = [n for n, info in step.tensors.items() if len(info.shape) == 2]
    shared = [n for n in matrices if n in base.tensors]  # a step may add a head (a critic's value head)
    if len(shared) * 2 < len(matrices):
        missing = next(n for n in matrices if n not in base.tensors)
        raise TensorMismatchError(
            f"tensor '{missing}'",
            f"most of the step's {len(matrices)} weight matrices in the base {base.path}",
            f"only {len(shared)} of them there (tensor names of another model)",
            _BASE_FIX,
        )
    check_same_tensors(base.shapes, step.shapes, shared, str(base.path), str(step.path))


def check_none_missing(expected: Iterable[str], present: Mapping[str, object], where: str) -> None:
    """Every tensor of `expected` (the base's selection) is also in `present` (a step checkpoint)."""
    missing = sorted(set(expected) - set(present))
    if missing:
        raise TensorMismatchError(
            f"tensor '{missing[0]}'",
            f"present in {where} (as in the base)",
            f"missing there ({len(missing)} selected base tensor(s) missing)",
            "re-save the full checkpoint, or pass the matching base model",
        )


def _weight_files(folder: Path) -> tuple[list[Path], bytes]:
    """The safetensors files of a checkpoint folder, and the index bytes (b'' for a single file); every
    file guarded by the data roots."""
    if not folder.is_dir():
        raise CheckpointFormatError(
            str(folder), "a checkpoint folder", "no such folder", "check the path (a Hugging Face model folder)"
        )
    guard(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        raw = read_regular(guard(index), CheckpointFormatError)
        names = _shard_names(index, raw)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointFormatError(
                str(index),
                f"its {len(names)} shard files in {folder}",
                f"missing {', '.join(missing[:3])}",
                "copy the missing shards",
            )
        return [guard(folder / n) for n in names], raw
    if (folder / SINGLE_FILE).is_file():
        return [guard(folder / SINGLE_FILE)], b""
    raise CheckpointFormatError(str(folder), f"{SINGLE_FILE} or {INDEX_FILE}", _describe(folder), _remedy(folder))


def _shard_names(index: Path, raw: bytes) -> list[str]:
    """The shard file names an index's `weight_map` names: plain file names in the checkpoint's folder."""
    try:
        weight_map = json.loads(raw.decode("utf-8"))["weight_map"]
    except (ValueError, KeyError, TypeError, RecursionError):
        weight_map = None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointFormatError(
            str(index),
            "a JSON object whose 'weight_map' maps tensor names to shard file names",
            "something else",
            "re-save the checkpoint with save_pretrained",
        )
    names = sorted(set(weight_map.values()))
    odd = [n for n in names if not n or n in (".", "..") or "/" in n or "\\" in n or "\x00" in n]
    if odd:
        raise CheckpointFormatError(
            str(index),
            "shard file names in the checkpoint's own folder",
            f"{odd[0]!r}",
            "re-save the checkpoint with save_pretrained",
        )
    return names


def _describe(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())[:6]
    return "files: " + ", ".join(names) if names else "an empty folder"


def _remedy(folder: Path) -> str:
    from .deepspeed import zero_advice

    zero = zero_advice(folder)
    if zero:
        return zero
    if (folder / "adapter_model.safetensors").is_file():
        return "this is a LoRA adapter: merge it into the base (peft merge_and_unload) and save_pretrained"
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        return "convert the PyTorch weights: model.save_pretrained(DIR, safe_serialization=True)"
    return "point at a Hugging Face model folder saved with save_pretrained"
