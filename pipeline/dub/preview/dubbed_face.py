"""The dubbed face in a window of a finished output: tracked again on the output's own frames, so
the sync plot measures the mouth that was generated, not the one that was planned.

The report names the dubbed track by its id in the source's tracks, which carry no positions, so
among the faces found in the output the dubbed one is the face whose lower half changed most
against the source frame that fed it (every pixel outside the blend mask is the source's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from musedub.models.landmarks import LandmarkDetector
from musedub.pipeline.dub.face_stages import gap_frames
from musedub.pipeline.face.multi_track import MultiFaceTracker
from musedub.pipeline.face.speaker import mouth_opening
from musedub.pipeline.media.frames import FrameReader

CHANGE_SAMPLES = 6  # frames of the window decoded again to tell which face changed


@dataclass(frozen=True)
class DubbedFace:
    """Over output frames [start, stop): the dubbed face's landmarks (T, 68, 2) (NaN: not seen), its
    mouth opening (T,), and how many faces were found in the output there."""

    start: int
    stop: int
    landmarks: np.ndarray
    opening: np.ndarray
    faces_found: int


def _lower_half_change(before: np.ndarray, after: np.ndarray, marks: np.ndarray) -> float:
    """Mean absolute pixel change in the lower half of the landmarks' box (68, 2)."""
    h, w = before.shape[:2]
    x1, y1 = np.floor(np.nanmin(marks, axis=0)).astype(int)
    x2, y2 = np.ceil(np.nanmax(marks, axis=0)).astype(int)
    x1, x2 = max(x1, 0), min(x2, w)
    y1, y2 = max((y1 + y2) // 2, 0), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return 0.0
    region = np.s_[y1:y2, x1:x2]
    return float(np.abs(before[region].astype(np.int16) - after[region].astype(np.int16)).mean())


def dubbed_track(
    faces: np.ndarray, picks: np.ndarray, befores: Iterable[np.ndarray], afters: Iterable[np.ndarray]
) -> int:
    """Index of the track (faces (n, T, 68, 2)) whose lower face changed most from `befores` (source
    frames) to `afters` (output frames), decoded at window positions `picks`."""
    change = np.zeros(len(faces))
    seen = np.zeros(len(faces))
    for k, before, after in zip(picks, befores, afters, strict=True):
        for t in range(len(faces)):
            if not np.isnan(faces[t, k, 0, 0]):
                change[t] += _lower_half_change(before, after, faces[t, k])
                seen[t] += 1
    return int(np.argmax(change / np.maximum(seen, 1)))


def track_dubbed_face(
    detector: LandmarkDetector,
    output: FrameReader,
    source: FrameReader,
    frames: np.ndarray,
    sources: np.ndarray,
    fps: Fraction,
    options: dict[str, Any],
) -> DubbedFace:
    """Track every face over output `frames` (consecutive, streamed: only a few frames are held)
    with the job's own tracking options, then keep the dubbed one; `sources` feed each frame."""
    tracker = MultiFaceTracker(
        detector,
        detect_every=int(options.get("detect_every", 5)),
        min_size=int(options.get("face_min_size", 32)),
        max_faces=int(options.get("max_faces", 24)),
        gap=gap_frames(fps),
    )
    found = tracker.track(output.frames(frames), smooth_radius=int(options.get("smooth_radius", 2)))
    start, stop = int(frames[0]), int(frames[-1]) + 1
    if found.tracks == 0:
        empty = np.full((len(frames), 68, 2), np.nan, np.float32)
        return DubbedFace(start, stop, empty, np.full(len(frames), np.nan), 0)
    chosen = 0
    if found.tracks > 1:
        picks = np.unique(np.linspace(0, len(frames) - 1, CHANGE_SAMPLES).round().astype(np.int64))
        chosen = dubbed_track(found.landmarks, picks, source.frames(sources[picks]), output.frames(frames[picks]))
    marks = found.landmarks[chosen]  # (T, 68, 2)
    return DubbedFace(start, stop, marks, mouth_opening(marks), found.tracks)
