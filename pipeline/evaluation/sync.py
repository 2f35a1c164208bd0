"""LSE-D/C of a dub: our SyncNet over every window of 16 consecutive scored faces against the dub's own audio.

Windows are embedded as faces arrive and only their embeddings kept, so a film's every frame fits in
memory. A window counts when the audio under it exists at every shift of +-15 frames.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from musedub.models.syncnet import MEL_PER_FRAME, SYNC_FRAMES, SyncNet
from musedub.pipeline.audio.log_mel import mel_window
from musedub.pipeline.evaluation.metrics import SyncScore, lse_from_distances

MAX_OFFSET = 15  # audio shifts searched, in frames each way
SYNC_BATCH = 8  # windows per SyncNet call: (8, 16, 3, 128, 256) float32, 50 MB
AUDIO_BATCH = 256  # mel windows per SyncNet call


def window_starts(frame_count: int, mel_columns: int) -> range:
    """First frames of the windows LSE can score in a video of `frame_count` frames and its log-mel."""
    audio_frames = mel_columns // MEL_PER_FRAME
    return range(MAX_OFFSET, min(frame_count, audio_frames - MAX_OFFSET) - SYNC_FRAMES + 1)


class SyncWindows:
    """Fed the scored faces in frame order; embeds each 16-frame run of consecutive faces that starts in `starts`."""

    def __init__(self, syncnet: SyncNet, starts: range) -> None:
        self._syncnet = syncnet
        self._starts = starts
        self._last: deque[tuple[int, torch.Tensor]] = deque(maxlen=SYNC_FRAMES)
        self._pending: list[torch.Tensor] = []
        self._kept: list[int] = []
        self._embeddings: list[np.ndarray] = []

    def add(self, frame: int, crop: np.ndarray) -> None:
        """crop (256, 256, 3) uint8 of frame `frame`; a skipped frame breaks the run."""
        if self._last and self._last[-1][0] != frame - 1:
            self._last.clear()
        half = torch.from_numpy(crop[crop.shape[0] // 2 :]).permute(2, 0, 1).float() / 127.5 - 1  # (3, 128, 256)
        self._last.append((frame, half))
        start = frame - SYNC_FRAMES + 1
        if len(self._last) == SYNC_FRAMES and start in self._starts:
            self._pending.append(torch.stack([h for _, h in self._last]))  # (16, 3, 128, 256)
            self._kept.append(start)
            if len(self._pending) == SYNC_BATCH:
                self._flush()

    @torch.inference_mode()
    def _flush(self) -> None:
        if self._pending:
            self._embeddings.append(self._syncnet.embed_faces(torch.stack(self._pending)).numpy())  # (b, E)
            self._pending.clear()

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """Window starts (W,) and their face embeddings (W, E)."""
        self._flush()
        if not self._embeddings:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.array(self._kept, np.int64), np.concatenate(self._embeddings)


@torch.inference_mode()
def lse_of_windows(syncnet: SyncNet, starts: np.ndarray, faces: np.ndarray, mel: np.ndarray) -> SyncScore | None:
    """LSE of face windows (W,) / (W, E) against `mel` (80, T); None when there is no window: not measured."""
    if not len(starts):
        return None
    rows = starts[None] + np.arange(-MAX_OFFSET, MAX_OFFSET + 1)[:, None]  # (2K + 1, W) audio window per shift
    needed = np.unique(rows)  # (J,) the audio windows any shift reads
    audio = []
    for i in range(0, len(needed), AUDIO_BATCH):
        mels = np.stack([mel_window(mel, int(j)) for j in needed[i : i + AUDIO_BATCH]])  # (b, 80, 64)
        audio.append(syncnet.embed_audio(torch.from_numpy(mels)).numpy())
    embedded = np.concatenate(audio)  # (J, E)
    index = np.searchsorted(needed, rows)  # (2K + 1, W) rows of `embedded`
    distances = np.stack([np.linalg.norm(embedded[shift] - faces, axis=1) for shift in index])  # (2K + 1, W)
    return lse_from_distances(distances)
