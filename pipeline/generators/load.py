"""Load a generator by name onto a device: the one place that knows which models each needs."""

from __future__ import annotations

import torch

from musedub.infra.errors import ConfigError
from musedub.models.style_predictor import PREDICTOR_NAME, StylePredictor
from musedub.models.style_renderer import RENDERER_NAME, StyleRenderer
from musedub.models.weights.store import ModelStore, resolve_device
from musedub.pipeline.generators.base import FaceGenerator, GeneratorName
from musedub.pipeline.generators.musetalk import MuseTalkFaces
from musedub.pipeline.generators.style import StyleFaces


def require_generator_weights(name: GeneratorName, weights: str) -> None:
    """Fail at planning, in one line, when `weights` lack the generator's models: a style job should
    not run its tracking first and find out on the GPU."""
    if name != "style":
        return
    folder = ModelStore(weights).layout.style
    missing = [f"{n}.{ext}" for n in (PREDICTOR_NAME, RENDERER_NAME) for ext in ("json", "safetensors")]
    missing = [f for f in missing if not (folder / f).is_file()]
    if missing:
        raise ConfigError(
            f"weights {weights} have no style generator ({', '.join(missing)} missing in style/): none are "
            "published; train them with `musedub train-style`, or write random ones with `musedub weights init-random`"
        )


def load_face_generator(
    name: GeneratorName, weights: str, version: str, device: str, dtype: torch.dtype
) -> FaceGenerator:
    """The generator on `device` in `dtype`, in eval mode, gradients off."""
    store = ModelStore(weights)
    if name == "musetalk":
        return MuseTalkFaces(store.load_generator(version, device, dtype))  # type: ignore[arg-type]
    require_generator_weights(name, weights)
    target = resolve_device(device)
    models = (
        StylePredictor.from_pretrained(store.layout.style),
        StyleRenderer.from_pretrained(store.layout.style),
        store.load_vae(),
    )
    predictor, renderer, vae = (m.to(device=target, dtype=dtype).eval().requires_grad_(False) for m in models)
    return StyleFaces(predictor, renderer, vae)  # type: ignore[arg-type]
