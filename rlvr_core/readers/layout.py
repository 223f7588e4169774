"""Finding the checkpoints of a training run and their steps, from the layouts RL frameworks write.

| framework | layout under the run folder |
| --- | --- |
| TRL (and `transformers.Trainer`) | `checkpoint-<N>/` |
| verl | `global_step_<N>/actor/huggingface/` (weights there only after `verl.model_merger merge`) |
| OpenRLHF (DeepSpeed ZeRO, its default) | `_actor/global_step<N>/` (the run folder: `--ckpt.path`, or its `_actor`) |
| OpenRLHF with `--ckpt.save_hf` | `global_step<N>_hf/` (bf16; the ZeRO save of the same step is preferred) |
| plain | `step_<N>/`, `step-<N>/`, `<name>-step-<N>/` |

A user can also name checkpoints and their steps explicitly (`parse_explicit`, the CLI's
`--checkpoint STEP=PATH`). Nothing here reads weights or imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunLayoutError, UsageError
from ..system.dataroots import guard
from .dcp import is_dcp_folder
from .formats import holds_checkpoint
from .fsdp import is_fsdp_folder
from .zero import is_zero_folder

_STEP = r"([0-9]{1,18})"  # ASCII digits only (not `checkpoint-٣`), and a step that fits in int64
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("trl", re.compile(rf"checkpoint-{_STEP}")),
    ("verl", re.compile(rf"global_step_{_STEP}")),
    ("openrlhf", re.compile(rf"global_step{_STEP}_hf")),
    ("deepspeed", re.compile(rf"global_step{_STEP}")),
    ("plain", re.compile(rf"(?:.+-)?step[-_]{_STEP}")),
)


@dataclass(frozen=True)
class StepCheckpoint:
    """One checkpoint of a run."""

    step: int
    path: Path
    """The Hugging Face model folder holding the weights."""
    layout: str
    """`trl`, `verl`, `openrlhf`, `deepspeed`, `plain` or `explicit`."""

    @property
    def exact(self) -> bool:
        """True for the trainer's own fp32 training files (verl's rank files, a ZeRO save), which win over
        a 16-bit export of the same step."""
        return self.layout == "deepspeed" or (self.layout == "verl" and self.path.name == "actor")


def discover_steps(run_dir: str | Path, steps: list[int] | None = None) -> list[StepCheckpoint]:
    """The checkpoints under `run_dir`, sorted by step; only `steps` when given.

    Raises RunLayoutError when nothing is found, a step appears twice, a requested step is absent, or
    a verl step holds no merged Hugging Face weights (the message gives the merge command).
    """
    run_dir = guard(Path(run_dir))  # under data roots, a folder outside them is not even listed
    if not run_dir.is_dir():
        raise RunLayoutError(str(run_dir), "a run folder of checkpoints", "no such folder", "check the path")
    found: dict[int, StepCheckpoint] = {}
    for child in _children(run_dir):
        checkpoint = _checkpoint_folder(child)
        if checkpoint is None:
            continue
        if checkpoint.step in found and not _one_exact(found[checkpoint.step], checkpoint):
            raise RunLayoutError(
                str(run_dir),
                "one checkpoint per step",
                f"step {checkpoint.step} in both {found[checkpoint.step].path} and {checkpoint.path}",
                "name the checkpoints explicitly with --checkpoint STEP=PATH",
            )
        if _wins(checkpoint, found.get(checkpoint.step)):
            found[checkpoint.step] = checkpoint
    if not found:
        raise RunLayoutError(
            str(run_dir),
            "checkpoint folders (checkpoint-N, global_step_N/actor, _actor/global_stepN, "
            "global_stepN_hf, step_N, step-N, NAME-step-N)",
            _listing(run_dir),
            _no_steps_fix(run_dir),
        )
    chosen = _select(found, steps, run_dir)
    _require_merged(chosen)
    return chosen


def step_folders(run_dir: str | Path) -> list[StepCheckpoint]:
    """The checkpoint folders under `run_dir` by step, as a trainer writes them: never raises (a folder
    that is missing, or a step found twice, is skipped), weights not required (`rlvr watch` waits for
    them). verl's `global_step_N` is listed once its `actor/huggingface/` folder exists."""
    found: dict[int, StepCheckpoint] = {}
    try:
        children = _children(Path(run_dir))
    except OSError:
        return []
    for child in children:
        checkpoint = _checkpoint_folder(child)
        if checkpoint is None or not checkpoint.path.is_dir():
            continue
        if _wins(checkpoint, found.get(checkpoint.step)):
            found[checkpoint.step] = checkpoint
    return [found[step] for step in sorted(found)]


def _children(run_dir: Path) -> list[Path]:
    """The run folder's entries, and those of OpenRLHF's DeepSpeed save folder `_actor/` inside it."""
    children = sorted(run_dir.iterdir())
    actor = run_dir / "_actor"
    if actor.is_dir():
        children += sorted(actor.iterdir())
    return children


def _wins(new: StepCheckpoint, old: StepCheckpoint | None) -> bool:
    """`new` takes the step: the first folder found for it, or the trainer's exact save over an export."""
    return old is None or (new.exact and not old.exact)


def _one_exact(a: StepCheckpoint, b: StepCheckpoint) -> bool:
    """Two folders of one step where one is the trainer's exact save and the other its 16-bit export."""
    return a.exact != b.exact


def _checkpoint_folder(child: Path) -> StepCheckpoint | None:
    """The checkpoint a folder of a run folder holds by its name, or None. verl's: its `actor/` folder when
    that holds the FSDP rank files or a DCP save (the exact fp32 master weights, preferred), else `actor/huggingface/`
    (merged weights, rounded to bf16 by `verl.model_merger`)."""
    if not child.is_dir():
        return None
    for layout, pattern in _PATTERNS:
        match = pattern.fullmatch(child.name)
        if match:
            path = child
            if layout == "deepspeed" and not (is_zero_folder(child) or (child.parent / "latest").is_file()):
                continue  # a folder named global_stepN outside a DeepSpeed save folder
            if layout == "verl":
                actor = child / "actor"
                path = actor if is_fsdp_folder(actor) or is_dcp_folder(actor) else actor / "huggingface"
            return StepCheckpoint(int(match.group(1)), path, layout)
    return None


def step_of(name: str) -> int | None:
    """The step number in a checkpoint folder's name (`checkpoint-100`, `global_step_100`, ...), or None."""
    for _, pattern in _PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return int(match.group(1))
    return None


def locate_step(model_dir: str | Path) -> tuple[int, Path] | None:
    """(step, run folder) of a checkpoint folder in a known layout (verl's `global_step_N/actor/huggingface`
    included), or None."""
    folder = Path(model_dir).resolve()
    for candidate in (folder, folder.parent, folder.parent.parent):
        for _, pattern in _PATTERNS:
            match = pattern.fullmatch(candidate.name)
            if match:
                return int(match.group(1)), candidate.parent
    return None


def parse_explicit(pairs: list[str]) -> list[StepCheckpoint]:
    """Parse `STEP=PATH` strings into checkpoints, sorted by step."""
    result: dict[int, StepCheckpoint] = {}
    for pair in pairs:
        step_text, sep, path = pair.partition("=")
        if not sep or not re.fullmatch(_STEP, step_text.strip()) or not path:
            raise UsageError(
                f"--checkpoint {pair!r}",
                "STEP=PATH (for example 100=/runs/a/ckpt100)",
                pair,
                "write the step number, '=', then the checkpoint folder",
            )
        step = int(step_text)
        if step in result:
            raise UsageError(
                f"--checkpoint {pair!r}", "each step once", f"step {step} twice", "give one folder per step"
            )
        result[step] = StepCheckpoint(step, Path(path), "explicit")
    return [result[s] for s in sorted(result)]


def parse_steps(text: str) -> list[int]:
    """Parse `--steps 100,200` into [100, 200]."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if not all(re.fullmatch(_STEP, part) for part in parts):
            raise ValueError(text)
        steps = sorted({int(part) for part in parts})
    except ValueError:
        raise UsageError(
            "--steps",
            "comma-separated step numbers such as 100,200",
            repr(text),
            "write whole numbers separated by commas",
        ) from None
    if not steps:
        raise UsageError("--steps", "at least one step number", repr(text), "write for example --steps 100,200")
    return steps


def _select(found: dict[int, StepCheckpoint], steps: list[int] | None, run_dir: Path) -> list[StepCheckpoint]:
    if steps is None:
        return [found[s] for s in sorted(found)]
    missing = [s for s in steps if s not in found]
    if missing:
        raise RunLayoutError(
            str(run_dir),
            f"steps {steps}",
            f"no checkpoint for step(s) {missing}; available: {sorted(found)}",
            "choose --steps from the available steps",
        )
    return [found[s] for s in sorted(set(steps))]


def _require_merged(chosen: list[StepCheckpoint]) -> None:
    unmerged = [c for c in chosen if c.layout == "verl" and not holds_checkpoint(c.path)]
    if not unmerged:
        return
    first = unmerged[0]
    actor = first.path.parent
    raise RunLayoutError(
        str(first.path),
        f"verl's FSDP rank files (actor/model_world_size_W_rank_R.pt) or merged weights for step {first.step}",
        f"no weights in {len(unmerged)} verl step(s): {[c.step for c in unmerged][:10]}",
        f"wait for the trainer to finish writing {actor}, or choose other steps with --steps (the tool reads "
        "verl's rank files directly: no merge is needed)",
    )


def _listing(run_dir: Path) -> str:
    names = sorted(p.name for p in run_dir.iterdir())[:6]
    return "entries: " + ", ".join(names) if names else "an empty folder"


def _no_steps_fix(run_dir: Path) -> str:
    from .deepspeed import zero_advice

    inner = [c for c in sorted(run_dir.iterdir()) if c.is_dir() and step_folders(c)]
    if inner:  # OpenRLHF's --ckpt.output_dir holds the final model; its steps are in --ckpt.path below it
        return f"the step checkpoints are one level down, in {inner[0]} (OpenRLHF's --ckpt.path): pass that folder"
    zero = zero_advice(run_dir)
    if zero:
        return zero
    if run_dir.name == "actor" and step_of(run_dir.parent.name) is not None:  # verl's global_step_N/actor
        return f"this is one verl step: pass the run folder {run_dir.parent.parent}, or --checkpoint STEP={run_dir}"
    if holds_checkpoint(run_dir):
        return "this folder is a single checkpoint: pass its parent, or --checkpoint STEP=PATH"
    return "point at the training run's output folder, or name checkpoints with --checkpoint STEP=PATH"
