"""A job's face tracks: the tracks of its chunks (tracked apart, maybe on different workers) joined
into tracks of the whole source, with ids stable for the job (numbered by first appearance).

Tracks are kept sparse (each over its own span of frames), so a film with many faces costs memory
in proportion to the faces on screen, not faces x length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musedub.pipeline.face.multi_track import SpanFaces
from musedub.pipeline.face.track import MIN_IOU, iou


@dataclass(eq=False)
class Track:
    """One face over source frames [start, start + len(landmarks)); landmarks NaN in its gaps."""

    id: int
    shot: int
    start: int
    landmarks: np.ndarray  # (n, 68, 2) float32
    sync: np.ndarray | None = None  # (n,) float32 SyncNet's speaking probability, NaN where it did not run

    @property
    def stop(self) -> int:
        return self.start + len(self.landmarks)

    @property
    def seen(self) -> np.ndarray:
        return ~np.isnan(self.landmarks[:, 0, 0])

    def present(self, frame: int) -> bool:
        return self.start <= frame < self.stop and bool(self.seen[frame - self.start])

    def box(self, frame: int) -> np.ndarray:
        """(4,) x1, y1, x2, y2 around the landmarks of a frame where it is seen."""
        marks = self.landmarks[frame - self.start]
        return np.concatenate([marks.min(axis=0), marks.max(axis=0)])

    def sizes(self) -> np.ndarray:
        """Face height in px per frame of its span, 0 where not seen -> (n,)."""
        height = self.landmarks[:, :, 1].max(axis=1) - self.landmarks[:, :, 1].min(axis=1)
        return np.nan_to_num(height, nan=0.0)

    def centres(self) -> np.ndarray:
        """Mean landmark position per frame -> (n, 2), NaN where not seen."""
        return self.landmarks.mean(axis=1)


@dataclass
class _Open:
    shot: int
    start: int
    parts: list[tuple[int, np.ndarray, np.ndarray]]  # (first frame, landmarks (k, 68, 2), sync (k,))
    last: int  # last frame seen


def _seen_frames(marks: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isnan(marks[:, 0, 0]))


def _box(marks: np.ndarray) -> np.ndarray:
    return np.concatenate([marks.min(axis=0), marks.max(axis=0)])


def join_chunks(chunks: Sequence[tuple[int, SpanFaces]], gap: int) -> tuple[list[Track], np.ndarray]:
    """Chunks (first frame, faces) in order and touching -> (tracks with ids from 1, shot (N,) int32).

    A track that ends within `gap` frames of a chunk's start joins the track that starts there in
    the same shot with the most overlapping box (IoU at least MIN_IOU); tracks never cross a cut.
    """
    cuts = np.concatenate([faces.cuts for _, faces in chunks]) if chunks else np.zeros(0, bool)
    if len(cuts):
        cuts[0] = True
    shot = np.cumsum(cuts).astype(np.int32) - 1  # (N,) shot index from 0
    opened: list[_Open] = []
    for first, faces in chunks:
        before = [t for t in opened if t.shot == shot[first] and first - t.last <= gap + 1] if len(cuts) else []
        pairs = []
        for k in range(faces.tracks):
            frames = _seen_frames(faces.landmarks[k])
            if not len(frames) or shot[first + frames[0]] != shot[first] or frames[0] > gap:
                continue
            head = _box(faces.landmarks[k, frames[0]])
            for t in before:
                tail = _box(t.parts[-1][1][t.last - t.parts[-1][0]])
                pairs.append((float(iou(tail, head[None])[0]), id(t), k, t))
        joined: dict[int, _Open] = {}
        used: set[int] = set()
        for overlap, key, k, t in sorted(pairs, key=lambda p: -p[0]):
            if overlap >= MIN_IOU and key not in used and k not in joined:
                joined[k] = t
                used.add(key)
        for k in range(faces.tracks):
            frames = _seen_frames(faces.landmarks[k])
            if not len(frames):
                continue
            a, b = int(frames[0]), int(frames[-1]) + 1
            sync = faces.sync[k, a:b] if faces.sync is not None else np.full(b - a, np.nan, np.float32)
            part = (first + a, faces.landmarks[k, a:b], sync)
            if k in joined:
                joined[k].parts.append(part)
                joined[k].last = first + b - 1
            else:
                opened.append(_Open(int(shot[first + a]), first + a, [part], first + b - 1))
    return _numbered(opened), shot


def _numbered(opened: list[_Open]) -> list[Track]:
    """Dense landmarks per track over its span, ids by first frame, then left to right."""
    order = sorted(opened, key=lambda t: (t.start, float(np.nanmin(t.parts[0][1][0, :, 0]))))
    tracks = []
    for number, t in enumerate(order, start=1):
        marks = np.full((t.last + 1 - t.start, 68, 2), np.nan, np.float32)
        sync = np.full(t.last + 1 - t.start, np.nan, np.float32)
        for first, part, part_sync in t.parts:
            marks[first - t.start : first - t.start + len(part)] = part
            sync[first - t.start : first - t.start + len(part)] = part_sync
        tracks.append(Track(number, t.shot, t.start, marks, None if np.isnan(sync).all() else sync))
    return tracks
