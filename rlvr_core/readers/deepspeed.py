"""DeepSpeed ZeRO saves the tool cannot read itself: the exact conversion command DeepSpeed ships.

OpenRLHF 0.11.2 saves its actor with DeepSpeed (`<ckpt.path>/_actor/global_step<N>/`, a `latest` file, and
DeepSpeed's own `zero_to_fp32.py` copied into `_actor/`). Data-parallel ZeRO-1/2/3 saves are read directly
(`readers.zero`); what is refused there (tensor-, pipeline- or expert-parallel saves, a file that is not
what DeepSpeed writes) gets this advice: DeepSpeed's own script (`zero_to_fp32.py CHECKPOINT_DIR OUTPUT_DIR
--tag TAG --safe_serialization`: exact fp32 safetensors), to run once per step. Names read from DeepSpeed
0.19.8 (`runtime/engine.py`, `utils/zero_to_fp32.py`).
"""

from __future__ import annotations

from pathlib import Path


def _is_tag_folder(folder: Path) -> bool:
    try:
        return any(p.name.endswith(("_model_states.pt", "_optim_states.pt")) for p in folder.iterdir())
    except OSError:
        return False


def zero_advice(folder: Path) -> str | None:
    """The conversion command when `folder` is (or holds) a DeepSpeed ZeRO save, else None: a tag folder
    (`_actor/global_step10`), the save folder (`_actor`, with `latest`), or an OpenRLHF ckpt.path (`_actor`
    inside)."""
    folder = Path(folder)
    if _is_tag_folder(folder):
        save, tag = folder.parent, folder.name
    elif (folder / "_actor").is_dir():
        return zero_advice(folder / "_actor")
    elif (folder / "latest").is_file() and any(_is_tag_folder(p) for p in folder.iterdir() if p.is_dir()):
        save = folder
        try:
            tag = (folder / "latest").read_text(encoding="utf-8").strip() or "<tag>"
        except (OSError, UnicodeDecodeError):
            tag = "<tag>"
    else:
        return None
    out = save / f"{tag}_fp32"
    return (
        f"this is a DeepSpeed ZeRO checkpoint (OpenRLHF's default save), whose fp32 weights are split over the "
        f"optimizer partitions: convert each step with DeepSpeed's own script, exactly: python "
        f"{save / 'zero_to_fp32.py'} {save} {out} --tag {tag} --safe_serialization, then pass --checkpoint "
        f"N={out} (or analyse the {tag}_hf folder OpenRLHF writes with --ckpt.save_hf, rounded to bf16)"
    )
