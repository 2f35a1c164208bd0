"""LSE's windows: only runs of 16 consecutive faces count, and their score is the offset search's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musedub.models.syncnet import TINY_SYNCNET_CONFIG, SyncNet
from musedub.pipeline.audio.log_mel import mel_window
from musedub.pipeline.evaluation.metrics import lse
from musedub.pipeline.evaluation.sync import MAX_OFFSET, SyncWindows, lse_of_windows, window_starts


def test_windows_need_16_consecutive_faces_and_audio_at_every_shift() -> None:
    torch.manual_seed(0)
    net = SyncNet(TINY_SYNCNET_CONFIG).eval()
    crops = np.random.default_rng(0).integers(0, 256, (60, 256, 256, 3), dtype=np.uint8)
    assert window_starts(80, 240) == range(15, 30)  # 60 frames of audio: the last window ends 15 frames early
    assert window_starts(40, 400) == range(15, 25)  # the video is shorter: its last window ends at its end
    windows = SyncWindows(net, window_starts(60, 240))
    for frame in [*range(0, 35), *range(36, 60)]:  # no face on frame 35
        windows.add(frame, crops[frame])
    kept, faces = windows.windows()
    assert kept.tolist() == [15, 16, 17, 18, 19] and faces.shape == (5, 16)  # 20.. would hold frame 35
    assert list(SyncWindows(net, range(15, 30)).windows()[0]) == []

    mel = np.random.default_rng(1).normal(size=(80, 240)).astype(np.float32)
    score = lse_of_windows(net, kept, faces, mel)
    with torch.inference_mode():
        audio = net.embed_audio(torch.from_numpy(np.stack([mel_window(mel, j) for j in range(0, 35)]))).numpy()
    expected = lse(faces, audio, MAX_OFFSET)  # windows 15..19 read audio windows 0..34
    assert score is not None and score.offset == expected.offset
    assert (score.distance, score.confidence) == pytest.approx((expected.distance, expected.confidence))
    assert lse_of_windows(net, kept[:0], faces[:0], mel) is None
