"""The training step on a fixed batch of real face crops: the loss goes down (stage 1 and 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musedub.infra.sample_media import face_frame
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.face.crop_geometry import Box, crop_face
from musedub.pipeline.train.config import TrainConfig
from musedub.pipeline.train.loop import build_models
from musedub.pipeline.train.step import TrainStep, crop_mouths

FACE = Box(100, 40, 220, 180)  # the astronaut's face in a 320x240 frame


def fixed_batch(samples: int, frames: int, dim: int) -> dict[str, np.ndarray]:
    """Crops of the moving astronaut: targets at t, references 0.5 s later; fixed random prompts."""
    rng = np.random.default_rng(0)
    times = np.arange(samples * frames).reshape(samples, frames) / 25
    targets = np.stack([[crop_face(face_frame(t), FACE) for t in row] for row in times])  # (B, T, 256, 256, 3)
    references = np.stack([[crop_face(face_frame(t + 0.5), FACE) for t in row] for row in times])
    return {
        "targets": targets,
        "references": references,
        "prompts": rng.normal(size=(samples, frames, 50, dim)).astype(np.float32),
        "mouths": np.tile(np.array([70, 150, 190, 230], np.int32), (samples, frames, 1)),
        "mel": rng.normal(size=(samples, 80, 64)).astype(np.float32),
    }


@pytest.mark.parametrize("stage", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_loss_goes_down_on_a_fixed_batch(training_weights: WeightsLayout, stage: int, one_thread: None) -> None:
    torch.manual_seed(0)
    extra = {"gan_start": 0, "discriminator_width": 8} if stage == 2 else {}
    config = TrainConfig(
        stage=stage,
        dataset="unused",
        output="unused",
        weights=str(training_weights.root),
        batch_size=1 if stage == 2 else 4,
        grad_accum=1,
        lr=1e-3,
        **extra,
    )
    models = build_models(config, torch.device("cpu"))
    step = TrainStep(models, config, torch.device("cpu"))
    batch = fixed_batch(config.batch_size, config.frames_per_sample, models.unet.audio_dim)
    # l1 keeps falling (stage 1: 0.470 -> 0.395 at step 5, 0.373 at step 12; stage 2: 0.471 -> 0.443 -> 0.433
    # at step 2, 0.405 at step 5). Stage 2 costs ~4 s a step here (16 frames a sample), so it checks two updates
    # with GAN, feature matching and sync on: on a fixed batch an l1 that did not learn would stay at 1.0x
    history = [step([batch], i) for i in range(10 if stage == 1 else 3)]
    first, last = history[0], history[-1]
    # a random tiny VAE decoder bounds how close it can get
    assert last["l1"] < (0.85 if stage == 1 else 0.95) * first["l1"], (first, last)
    assert last["perceptual"] < first["perceptual"]
    if stage == 2:
        assert {"gan_face", "gan_mouth", "fm_face", "fm_mouth", "sync", "discriminator"} <= set(last)


def test_mouth_crops_follow_their_boxes() -> None:
    images = torch.zeros(2, 3, 256, 256)
    images[0, :, 10:20, 30:50] = 1.0
    crops = crop_mouths(images, torch.tensor([[30, 10, 50, 20], [0, 0, 256, 256]]))
    assert crops.shape == (2, 3, 64, 128)
    assert float(crops[0].min()) == 1.0 and float(crops[1].max()) == 0.0
