"""Reading weight files and loading them strictly, with errors that name what differs."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from musedub.infra.errors import ConfigError, WeightsMismatchError

SHOWN = 5  # keys listed per kind of difference; the count says how many more there are


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from `.pth`/`.bin` (torch pickle, weights only) or `.safetensors`."""
    if not path.is_file():
        raise ConfigError(
            f"weights file {path} is missing: run `musedub weights download DIR` "
            "(or `musedub weights init-random --tiny DIR` offline) and pass --weights DIR"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ConfigError(f"weights file {path} cannot be read ({reason}): re-download it") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"weights file {path} is not a plain state_dict of tensors: use the published file")
    return dict(state)


def _listed(keys: list[str]) -> str:
    more = f", +{len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def describe_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    """'' when keys and shapes agree, else one line naming missing/unexpected keys and shapes."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    shapes = [
        f"{k}: file {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(expected.keys() & found.keys())
        if tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) ({_listed(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) ({_listed(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape(s) differ ({_listed(shapes)})")
    return "; ".join(parts)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, hint: str) -> None:
    """Load `state` into `module` (possibly built on the meta device) or raise naming every difference."""
    problem = describe_mismatch(module.state_dict(), state)
    if problem:
        raise WeightsMismatchError(f"{source} does not fit {type(module).__name__}: {problem}; {hint}")
    module.load_state_dict(state, strict=True, assign=True)
