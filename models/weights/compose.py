"""A weights folder made of a base release and a training checkpoint's models, for `musedub dub`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path, PurePosixPath

from musedub.infra.errors import ConfigError, InputError
from musedub.infra.storage import filesystem, validate_uri
from musedub.models.weights.layout import UNET_DIRS
from musedub.models.weights.store import ModelStore

CHECKPOINT_MODELS = (UNET_DIRS["v1.5"], "syncnet")
STYLE = "style"  # a train-style checkpoint holds one of the style generator's two models: merged file by file


def compose_weights(base: str, checkpoint: str, target: Path) -> list[str]:
    """Copy `base` to `target`, then replace each model folder a `musedub train` checkpoint holds, or
    the style model files a `train-style` checkpoint holds (the other style model stays the base's);
    returns what was replaced. Built beside `target` and renamed into place, so a failed copy leaves
    nothing behind.
    """
    if target.exists():
        raise InputError(f"weights folder {target} already exists: give a new folder")
    source = ModelStore(base).layout.root
    fs, root = filesystem(validate_uri(checkpoint, "checkpoint"))
    root = root.rstrip("/")
    present = [name for name in CHECKPOINT_MODELS if fs.isdir(f"{root}/{name}")]
    style = (
        sorted(PurePosixPath(f).name for f in fs.ls(f"{root}/{STYLE}", detail=False))
        if fs.isdir(f"{root}/{STYLE}")
        else []
    )
    if UNET_DIRS["v1.5"] not in present and not style:
        raise ConfigError(
            f"checkpoint {checkpoint} has no {UNET_DIRS['v1.5']}/ or {STYLE}/ folder: give a `musedub train` "
            "or `musedub train-style` checkpoint"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        built = staging / "weights"
        shutil.copytree(source, built)
        for name in present:
            shutil.rmtree(built / name, ignore_errors=True)
            fs.get(f"{root}/{name}/", str(built / name), recursive=True)
        (built / STYLE).mkdir(exist_ok=True)
        for name in style:
            fs.get(f"{root}/{STYLE}/{name}", str(built / STYLE / name))
        built.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return present + [f"{STYLE}/{name}" for name in style]
