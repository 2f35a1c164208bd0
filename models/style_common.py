"""What the two style models share: their weights format and the sin/cos position table.

No weights of the style-preserving model are published, so the format is ours: `<name>.json`, a
config dataclass read field by field (an unknown, missing or mistyped field is an error, never a
default), and `<name>.safetensors`, a state_dict loaded with `load_strict`, which names the file
and every key that differs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import torch
from torch import nn

from musedub.infra.errors import ConfigError
from musedub.models.checkpoint import load_strict, read_state_dict

INIT_HINT = "write random ones with `musedub weights init-random DIR` (no trained style weights are published)"

C = TypeVar("C")


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a config field's type: int, float, str, bool or tuple[X, ...]."""
    if get_origin(hint) is tuple:
        return isinstance(value, list | tuple) and all(_fits(v, get_args(hint)[0]) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def config_from_dict(cls: type[C], values: Any, source: str) -> C:
    """A config dataclass from JSON values; lists become tuples so configs compare and hash."""
    if not isinstance(values, dict):
        raise ConfigError(f"style config {source} is not a JSON object: rewrite it with save_pretrained")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown, missing = sorted(values.keys() - names), sorted(names - values.keys())
    if unknown or missing:
        raise ConfigError(
            f"style config {source} does not describe {cls.__name__} (unknown {unknown}, missing {missing}): "
            "rewrite it with the code that saved the weights"
        )
    hints = get_type_hints(cls)
    wrong = sorted(k for k, v in values.items() if not _fits(v, hints[k]))
    if wrong:
        raise ConfigError(f"style config {source} has mistyped field(s) {wrong}: rewrite it with save_pretrained")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**fixed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"style config {source} is invalid ({exc}): fix the field it names") from None


def read_config(cls: type[C], path: Path) -> C:
    if not path.is_file():
        raise ConfigError(f"style model config {path} is missing: {INIT_HINT}")
    try:
        values = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"style config {path} is not valid JSON ({exc}): {INIT_HINT}") from None
    return config_from_dict(cls, values, str(path))


def save_model(module: nn.Module, config: Any, folder: Path, name: str) -> None:
    """Write `<folder>/<name>.json` (the dataclass `config`) and `<folder>/<name>.safetensors`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / f"{name}.safetensors"))


def load_model(build: type[nn.Module], config_cls: type[C], folder: Path, name: str) -> nn.Module:
    """Build `build(config)` on the meta device and fill it strictly from the safetensors file."""
    config = read_config(config_cls, folder / f"{name}.json")
    weights = folder / f"{name}.safetensors"
    if not weights.is_file():
        raise ConfigError(f"style model weights {weights} are missing: {INIT_HINT}")
    # Own storage per tensor: safetensors' tensors sit at unaligned offsets of one buffer, where
    # vectorised kernels round differently, so the loaded model would not match the saved one bit for bit.
    state = {k: v.clone() for k, v in read_state_dict(weights).items()}
    with torch.device("meta"):
        model = build(config)
    load_strict(model, state, source=str(weights), hint=f"use the {name}.json saved with it")
    return model.eval()


def sinusoids(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions (...,) -> (..., dim): [sin | cos] at geometric frequencies 1 .. 1/10000 (dim even).

    Kept here (not diffusers' embedding) so neither style model imports diffusers.
    """
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32) * (-math.log(10000.0) / half))
    angles = positions.float()[..., None] * freqs  # (..., dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
