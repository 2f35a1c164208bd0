"""Landmarks for every source frame: full-frame detection on a stride and at shot cuts, a cheap
detection in a window around the last face in between, then temporal smoothing within a shot.

Detecting around the previous box both follows the face and proves it is still there, so a face
that leaves is noticed on the next frame rather than at the next full detection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from musedub.pipeline.face.shot_cuts import colour_signature, is_cut

if TYPE_CHECKING:  # the tracks' data and smoothing serve planning too, which loads no detector
    from musedub.models.landmarks import LandmarkDetector

MIN_IOU = 0.2  # a box overlapping the last face less than this is someone, or something, else


@dataclass(eq=False)
class FaceTrack:
    """Per source frame: landmarks (N, 68, 2) float32, NaN where no face; shot (N,) int32."""

    landmarks: np.ndarray
    shot: np.ndarray

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.landmarks[:, 0, 0])

    def __len__(self) -> int:
        return len(self.shot)


def iou(a: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of box a (4,) with boxes (n, 4)."""
    x1 = np.maximum(a[0], boxes[:, 0])
    y1 = np.maximum(a[1], boxes[:, 1])
    x2 = np.minimum(a[2], boxes[:, 2])
    y2 = np.minimum(a[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(boxes) - inter, 1e-6)


class FaceTracker:
    """Runs a `LandmarkDetector` over a stream of frames; follows the largest face of each shot."""

    def __init__(self, detector: LandmarkDetector, detect_every: int = 5, window: float = 2.0) -> None:
        if detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        self.detector = detector
        self.detect_every = detect_every
        self.window = window

    def track(self, frames: Iterable[np.ndarray], smooth_radius: int = 2) -> FaceTrack:
        """Landmarks of every frame, smoothed over +-`smooth_radius` frames of the same face run."""
        marks: list[np.ndarray] = []
        shots: list[int] = []
        shot, last_box, last_signature = -1, None, None
        for i, frame in enumerate(frames):
            signature = colour_signature(frame)
            if is_cut(last_signature, signature):
                shot, last_box = shot + 1, None
            last_signature = signature
            box = self._follow(frame, last_box) if last_box is not None and i % self.detect_every else None
            if box is None:
                box = self._pick(self.detector.detect(frame), last_box)
            last_box = box
            marks.append(
                self.detector.landmarks(frame, box) if box is not None else np.full((68, 2), np.nan, np.float32)
            )
            shots.append(shot)
        landmarks = np.stack(marks) if marks else np.zeros((0, 68, 2), np.float32)
        track = FaceTrack(landmarks, np.array(shots, np.int32))
        return FaceTrack(smooth_landmarks(track, smooth_radius), track.shot)

    def _follow(self, frame: np.ndarray, last: np.ndarray) -> np.ndarray | None:
        """Detect inside a window `window` times the last box, centred on it."""
        h, w = frame.shape[:2]
        cx, cy = (last[0] + last[2]) / 2, (last[1] + last[3]) / 2
        half = max(last[2] - last[0], last[3] - last[1]) * self.window / 2
        x1, y1 = int(max(cx - half, 0)), int(max(cy - half, 0))
        x2, y2 = int(min(cx + half, w)), int(min(cy + half, h))
        if x2 - x1 < 8 or y2 - y1 < 8:
            return None
        boxes = self.detector.detect(np.ascontiguousarray(frame[y1:y2, x1:x2]))
        return self._pick(boxes + np.array([x1, y1, x1, y1], np.float32), last)

    @staticmethod
    def _pick(boxes: np.ndarray, last: np.ndarray | None) -> np.ndarray | None:
        """The box continuing the last face, or the largest one when there is no last face."""
        if len(boxes) == 0:
            return None
        if last is None:
            return boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
        overlap = iou(last, boxes)
        best = int(np.argmax(overlap))
        return boxes[best] if overlap[best] >= MIN_IOU else None


def smooth_landmarks(track: FaceTrack, radius: int) -> np.ndarray:
    """Centred moving average of landmarks over runs of consecutive found frames in one shot.

    A run never borrows from another shot or across a gap with no face; (N, 68, 2) float32.
    """
    found = track.found
    n = len(track)
    if radius <= 0 or n == 0:
        return track.landmarks.copy()
    breaks = np.ones(n, bool)
    breaks[1:] = (track.shot[1:] != track.shot[:-1]) | ~found[:-1]
    run = np.where(found, np.cumsum(breaks), -1)  # (N,) run id, -1 without a face
    values = np.nan_to_num(track.landmarks)
    total = np.zeros_like(values)
    count = np.zeros(n, np.float32)
    for offset in range(-radius, radius + 1):
        lo, hi = max(0, -offset), min(n, n - offset)  # frames i with i + offset in range
        same = (run[lo:hi] >= 0) & (run[lo:hi] == run[lo + offset : hi + offset])
        total[lo:hi] += values[lo + offset : hi + offset] * same[:, None, None]
        count[lo:hi] += same
    smoothed = total / np.maximum(count, 1)[:, None, None]
    smoothed[~found] = np.nan
    return smoothed.astype(np.float32)
