"""A weights folder made of a base release and a training checkpoint's models, for `musedub dub`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from musedub.infra.errors import ConfigError, InputError
from musedub.infra.storage import filesystem, validate_uri
from musedub.models.weights.layout import UNET_DIRS
from musedub.models.weights.store import ModelStore

CHECKPOINT_MODELS = (UNET_DIRS["v1.5"], "syncnet")


def compose_weights(base: str, checkpoint: str, target: Path) -> list[str]:
    """Copy `base` to `target`, then replace each model folder the checkpoint holds; returns their names.

    Built beside `target` and renamed into place, so a failed copy leaves nothing behind.
    """
    if target.exists():
        raise InputError(f"weights folder {target} already exists: give a new folder")
    source = ModelStore(base).layout.root
    fs, root = filesystem(validate_uri(checkpoint, "checkpoint"))
    present = [name for name in CHECKPOINT_MODELS if fs.isdir(f"{root.rstrip('/')}/{name}")]
    if UNET_DIRS["v1.5"] not in present:
        raise ConfigError(
            f"checkpoint {checkpoint} has no {UNET_DIRS['v1.5']}/ folder: give a `musedub train` checkpoint"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        built = staging / "weights"
        shutil.copytree(source, built)
        for name in present:
            shutil.rmtree(built / name, ignore_errors=True)
            fs.get(f"{root.rstrip('/')}/{name}/", str(built / name), recursive=True)
        built.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return present
