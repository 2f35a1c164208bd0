"""Training config defaults, margin trimming, mouth boxes and the SyncNet's mel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musedub.infra.errors import ConfigError
from musedub.pipeline.audio.log_mel import log_mel, mel_window
from musedub.pipeline.face.crop_geometry import Box, crop_face
from musedub.pipeline.train.config import TrainConfig, load_config
from musedub.pipeline.train.data import mouth_box, trim_margin


def test_stage_defaults_are_musetalk_s(tmp_path: Path) -> None:
    one = TrainConfig(stage=1, dataset="d", output="o")
    assert (one.batch_size, one.grad_accum, one.lr, one.frames_per_sample, one.min_face) == (32, 1, 2e-5, 1, 150)
    assert (one.l1, one.perceptual, one.sync, one.gan_face, one.betas) == (1.0, 0.01, 0.0, 0.0, (0.5, 0.999))
    two = TrainConfig(stage=2, dataset="d", output="o", lr=1e-5)
    assert (two.batch_size, two.grad_accum, two.lr, two.frames_per_sample, two.min_face) == (2, 8, 1e-5, 16, 200)
    assert (two.gan_face, two.gan_mouth, two.sync, two.gan_start) == (0.01, 0.01, 0.05, 1000)
    path = tmp_path / "bad.yaml"
    path.write_text("stage: 2\ndataset: d\noutput: o\nbatch_sise: 4\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        load_config(str(path), TrainConfig)
    path.write_text("stage: 2\ndataset: d\noutput: o\nframes_per_sample: 4\n")
    with pytest.raises(ConfigError, match="16 consecutive"):
        load_config(str(path), TrainConfig)


def test_trimming_the_stored_margin_matches_cropping_at_the_drawn_margin() -> None:
    rng = np.random.default_rng(0)
    frame = cv_smooth(rng.integers(0, 255, (400, 400, 3), np.uint8))
    y1, bottom = 100, 300  # box without margin
    stored = crop_face(frame, Box(120, y1, 320, bottom + 20))
    for margin in (0, 7, 20):
        direct = crop_face(frame, Box(120, y1, 320, bottom + margin))
        trimmed = trim_margin(stored, y1, bottom, bottom + 20, margin, 400)
        assert np.abs(trimmed.astype(int) - direct.astype(int)).mean() < 3.0
    assert trim_margin(stored, y1, bottom, bottom + 20, 20, 400) is stored


def cv_smooth(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 6)


def test_mouth_box_lies_in_the_crop() -> None:
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[48:68] = [[180, 260], [220, 270]] * 10  # mouth points
    box = mouth_box(landmarks, np.array([100, 100, 300, 300]), 310)
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256
    assert x1 < (180 - 100) * 256 / 200 < x2 and y1 < (260 - 100) * 256 / 210 < y2


def test_log_mel_runs_at_100_hz() -> None:
    samples = np.sin(2 * np.pi * 440 * np.arange(32000) / 16000).astype(np.float32) * 0.5
    mel = log_mel(samples)
    assert mel.shape == (80, 200) and mel.dtype == np.float32
    assert int(np.argmax(mel[:, 100])) == int(np.argmax(mel[:, 50]))  # a steady tone stays in its bin
    window = mel_window(mel, 40)  # frames 40..55 run past the end (50 frames of audio)
    assert window.shape == (80, 64) and np.all(window[:, 40:] == 0) and np.array_equal(window[:, :40], mel[:, 160:])
