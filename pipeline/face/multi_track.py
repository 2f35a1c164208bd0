"""Every face of a span of frames, each followed as its own track until a shot cut.

Full-frame detection runs on a stride, at shot cuts and while no face is followed; in between each
track is looked for in a window around its last box, which both follows it and proves it is still
there. A track missed for up to `gap` frames (a blink of the detector, a hand across the face)
keeps its id when it is found again near where it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from musedub.pipeline.face.shot_cuts import colour_signature, is_cut
from musedub.pipeline.face.track import MIN_IOU, FaceTrack, iou, smooth_landmarks

if TYPE_CHECKING:  # a face choice (planning, reports) needs the tracks' shapes, not torch and dlib
    from musedub.models.landmarks import LandmarkDetector

SAME_FACE_IOU = 0.5  # two tracks whose boxes overlap this much in one frame have found one face


@dataclass(eq=False)
class SpanFaces:
    """Faces of consecutive frames: landmarks (T, n, 68, 2) float32 per track, NaN where a track
    is not seen; cuts (n,) bool, True where a frame starts a new shot; sync (T, n) float32,
    SyncNet's speaking probability where it ran (else NaN)."""

    landmarks: np.ndarray
    cuts: np.ndarray
    sync: np.ndarray | None = None

    @property
    def tracks(self) -> int:
        return self.landmarks.shape[0]

    def trimmed(self, start: int, stop: int) -> SpanFaces:
        """Frames [start, stop) only, without the tracks that are not seen there."""
        marks = self.landmarks[:, start:stop]
        seen = ~np.isnan(marks[:, :, 0, 0]).all(axis=1)
        return SpanFaces(np.ascontiguousarray(marks[seen]), self.cuts[start:stop].copy())


@dataclass
class _Live:
    box: np.ndarray  # (4,) the last box it was seen in
    missed: int = 0  # frames since then
    marks: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (68, 2)


def _first_seen(face: _Live) -> tuple[int, float]:
    """Tracks in order of their first frame, then left to right."""
    first = min(face.marks)
    return first, float(face.marks[first][:, 0].min())


class MultiFaceTracker:
    """Runs a `LandmarkDetector` over a stream of frames and keeps a track per face of each shot.

    Faces whose detected box is smaller than `min_size` px are ignored, and at most `max_faces`
    (the largest) are followed, so a crowd of tiny faces costs no more than a few detections.
    """

    def __init__(
        self,
        detector: LandmarkDetector,
        detect_every: int = 5,
        window: float = 2.0,
        min_size: int = 32,
        max_faces: int = 24,
        gap: int = 12,
    ) -> None:
        if detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        self.detector = detector
        self.detect_every = detect_every
        self.window = window
        self.min_size = min_size
        self.max_faces = max_faces
        self.gap = gap

    def track(self, frames: Iterable[np.ndarray], smooth_radius: int = 2) -> SpanFaces:
        """All tracks of the frames, landmarks smoothed over +-`smooth_radius` frames of each run."""
        done: list[_Live] = []
        live: list[_Live] = []
        cuts: list[bool] = []
        last_signature = None
        for i, frame in enumerate(frames):
            signature = colour_signature(frame)
            cut = is_cut(last_signature, signature)
            last_signature = signature
            if cut:
                done.extend(live)
                live = []
            cuts.append(cut)
            if cut or i % self.detect_every == 0 or not live:
                self._match(self._detect(frame), live)
            else:
                self._follow(frame, live)
            for face in live:
                if face.missed == 0:
                    face.marks[i] = self.detector.landmarks(frame, face.box)
            done.extend(f for f in live if f.missed > self.gap)
            live = [f for f in live if f.missed <= self.gap]
        return self._faces(done + live, np.array(cuts, bool), smooth_radius)

    def _detect(self, frame: np.ndarray) -> np.ndarray:
        """Full-frame boxes (m, 4) of big enough faces, the largest `max_faces` of them."""
        boxes = self.detector.detect(frame)
        sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = np.flatnonzero(sizes >= self.min_size)
        keep = keep[np.argsort(-sizes[keep], kind="stable")][: self.max_faces]
        return boxes[keep]

    def _match(self, boxes: np.ndarray, live: list[_Live]) -> None:
        """Give each live track the box it overlaps most (greedily, best pairs first); boxes left
        over start new tracks."""
        for face in live:
            face.missed += 1
        pairs = sorted(
            (
                (float(iou(face.box, boxes[j : j + 1])[0]), t, j)
                for t, face in enumerate(live)
                for j in range(len(boxes))
            ),
            reverse=True,
        )
        used_t: set[int] = set()
        used_j: set[int] = set()
        for overlap, t, j in pairs:
            if overlap < MIN_IOU:
                break
            if t in used_t or j in used_j:
                continue
            used_t.add(t)
            used_j.add(j)
            live[t].box, live[t].missed = boxes[j], 0
        room = self.max_faces - len(live)
        for j in range(len(boxes)):
            if j not in used_j and room > 0:
                live.append(_Live(boxes[j]))
                room -= 1

    def _follow(self, frame: np.ndarray, live: list[_Live]) -> None:
        """Look for each track in a window `window` times its last box, centred on it."""
        h, w = frame.shape[:2]
        found: list[tuple[float, _Live, np.ndarray]] = []
        for face in live:
            face.missed += 1
            last = face.box
            cx, cy = (last[0] + last[2]) / 2, (last[1] + last[3]) / 2
            half = max(last[2] - last[0], last[3] - last[1]) * self.window / 2
            x1, y1 = int(max(cx - half, 0)), int(max(cy - half, 0))
            x2, y2 = int(min(cx + half, w)), int(min(cy + half, h))
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            boxes = self.detector.detect(np.ascontiguousarray(frame[y1:y2, x1:x2]))
            boxes = boxes + np.array([x1, y1, x1, y1], np.float32)
            if len(boxes):
                overlap = iou(last, boxes)
                best = int(np.argmax(overlap))
                if overlap[best] >= MIN_IOU:
                    found.append((float(overlap[best]), face, boxes[best]))
        taken: list[np.ndarray] = []
        for _, face, box in sorted(found, key=lambda item: -item[0]):  # two tracks never share one face
            if all(iou(box, other[None])[0] < SAME_FACE_IOU for other in taken):
                face.box, face.missed = box, 0
                taken.append(box)

    @staticmethod
    def _faces(tracks: list[_Live], cuts: np.ndarray, smooth_radius: int) -> SpanFaces:
        n = len(cuts)
        shot = np.cumsum(cuts).astype(np.int32)
        kept = sorted((t for t in tracks if t.marks), key=_first_seen)
        landmarks = np.full((len(kept), n, 68, 2), np.nan, np.float32)
        for k, face in enumerate(kept):
            frames = np.fromiter(face.marks, np.int64)
            landmarks[k, frames] = np.stack(list(face.marks.values()))
            landmarks[k] = smooth_landmarks(FaceTrack(landmarks[k], shot), smooth_radius)
        return SpanFaces(landmarks, cuts)
