"""Load a generator by name onto a device: the one place that knows which models each needs."""

from __future__ import annotations

import torch

from musedub.models.constants import GeneratorName
from musedub.models.style_predictor import StylePredictor
from musedub.models.style_renderer import StyleRenderer
from musedub.models.weights.store import ModelStore, resolve_device
from musedub.pipeline.generators.base import FaceGenerator
from musedub.pipeline.generators.musetalk import MuseTalkFaces
from musedub.pipeline.generators.requirements import require_generator_weights
from musedub.pipeline.generators.style import StyleFaces


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
