"""Through the model store: (masked crop, reference crop, audio prompt) -> a 256x256 face."""

from __future__ import annotations

import numpy as np
import torch
from skimage.data import astronaut

from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.store import ModelStore


def test_store_generator_maps_crops_and_audio_to_a_face(tiny_weights: WeightsLayout) -> None:
    store = ModelStore(str(tiny_weights.root))
    assert store.layout.is_random
    generator = store.load_generator(device="cpu")
    face = torch.from_numpy(np.ascontiguousarray(astronaut()[:256, 128:384]))[None]  # (1, 256, 256, 3)
    audio = torch.randn(1, 50, generator.unet.audio_dim)
    out = generator(face, face, audio)
    assert out.shape == (1, 256, 256, 3) and out.dtype == torch.uint8
    assert torch.equal(out, generator(face, face, audio))
    assert not torch.equal(out, generator(face, face, audio + 1))  # the audio reaches the output


def test_v10_checkpoint_loads_through_the_store(tiny_weights: WeightsLayout) -> None:
    store = ModelStore(str(tiny_weights.root))
    v10, v15 = store.load_unet("v1.0"), store.load_unet("v1.5")
    assert all(torch.equal(a, b) for a, b in zip(v10.state_dict().values(), v15.state_dict().values(), strict=True))
