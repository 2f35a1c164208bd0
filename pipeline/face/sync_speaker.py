"""Who speaks, by SyncNet: when the weights folder holds `syncnet/` (made by `musedub train-syncnet`),
each track's speaking score is SyncNet's probability that its mouth is in sync with the source
audio, instead of the weight-free mouth-opening correlation (`speaker.py`).

Per track, every `STRIDE` frames a window of 16 consecutive frames where it is seen: the lower
halves of its 256x256 crops (cropped as the generator crops) against the log-mel under the same
frames shifted by each offset within +-MAX_OFFSET. The offset is chosen once per track (the best
mean probability less OFFSET_COST per frame, as in `speaker.py`); a frame's score is the mean
probability of the windows that cover it at that offset. SyncNet was trained on 25 fps clips
(16 frames = 64 mel columns), so it is used for sources of 23-26 fps only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
import torch

from musedub.models.syncnet import SYNC_FRAMES, SyncNet
from musedub.pipeline.face.crop_geometry import crop_box, crop_face
from musedub.pipeline.face.speaker import MAX_OFFSET, OFFSET_COST

STRIDE = 4  # frames between windows: a window per frame would cost 4x for the same decision
FPS_RANGE = (23.0, 26.0)


def syncnet_fits(fps: Fraction) -> bool:
    return FPS_RANGE[0] <= float(fps) <= FPS_RANGE[1]


class SyncScorer:
    def __init__(self, syncnet: SyncNet) -> None:
        self.syncnet = syncnet

    @torch.inference_mode()
    def scores(
        self, frames: Iterable[np.ndarray], landmarks: np.ndarray, mel_windows: np.ndarray, frame_height: int
    ) -> np.ndarray:
        """Speaking probability per track and frame -> (T, n) float32, NaN where no window covers it.

        `frames` yields the n frames that `landmarks` (T, n, 68, 2) describe; `mel_windows`
        (n + 2K, 80, 64) holds the source's log-mel under frames [j - K, j - K + 16) for each j
        (K = MAX_OFFSET). Face windows are embedded as they fill, so memory holds 16 crops per
        track, not the chunk's.
        """
        tracks, n = landmarks.shape[:2]
        audio = self.syncnet.embed_audio(torch.from_numpy(mel_windows)).numpy()  # (n + 2K, E)
        recent: list[deque[tuple[int, np.ndarray]]] = [deque(maxlen=SYNC_FRAMES) for _ in range(tracks)]
        found: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(tracks)]  # (window start, P per offset)
        for i, frame in enumerate(frames):
            for t in np.flatnonzero(~np.isnan(landmarks[:, i, 0, 0])):
                box = crop_box(landmarks[t, i], frame_height, "v1.5")
                if box is None:
                    continue
                recent[t].append((i, crop_face(frame, box)[128:]))  # (128, 256, 3) lower half
                start = i - SYNC_FRAMES + 1
                if start % STRIDE == 0 and recent[t][0][0] == start:  # 16 consecutive frames seen
                    halves = np.stack([h for _, h in recent[t]]).transpose(0, 3, 1, 2)  # (16, 3, 128, 256)
                    face = self.syncnet.embed_faces(torch.from_numpy(halves[None] / 127.5 - 1).float()).numpy()[0]
                    rows = start + MAX_OFFSET + np.arange(-MAX_OFFSET, MAX_OFFSET + 1)
                    found[t].append((start, audio[rows] @ face))  # (2K + 1,) P(in sync) per offset
        out = np.full((tracks, n), np.nan, np.float32)
        cost = OFFSET_COST * np.abs(np.arange(-MAX_OFFSET, MAX_OFFSET + 1))
        for t, windows_of_track in enumerate(found):
            if not windows_of_track:
                continue
            probability = np.stack([p for _, p in windows_of_track])  # (W, 2K + 1)
            best = int(np.argmax(probability.mean(axis=0) - cost))
            total, count = np.zeros(n), np.zeros(n)
            for start, p in windows_of_track:
                total[start : start + SYNC_FRAMES] += p[best] - cost[best]
                count[start : start + SYNC_FRAMES] += 1
            out[t] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return out
