"""Which face is dubbed in each frame, and why: the `--speaker` policies.

- `auto` (default): in each span, the track that speaks in the source (`speaker.py`). Where nobody
  speaks, while the dub audio is voiced, the track that speaks nearest in time in the same shot
  (before or after, if it is on screen); otherwise nobody: the frames pass through. A source with
  no audio track, or one where no face is seen speaking anywhere, falls back to `largest`.
- `largest`: the largest face at a shot's start, followed while it is seen, then the largest again.
- `x,y`: in each shot, the track whose mean position is nearest that point (0..1 of width, height).
- `track:N`: the track with that id (`musedub faces VIDEO` lists them).
A choice lasts at least `min_span` frames (shorter runs take a neighbour's track), so the dubbed
face does not flicker between two mouths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction

import numpy as np

from musedub.infra.errors import InputError
from musedub.pipeline.face.job_tracks import Track
from musedub.pipeline.face.speaker import SPEAKING, SYNC_SPEAKING, mouth_opening, speaking_scores

SPEAKER_HELP = "auto, largest, X,Y (a point, each 0..1) or track:N (an id from `musedub faces`)"
_POINT = re.compile(r"^\s*([0-9.]+)\s*,\s*([0-9.]+)\s*$")
_TRACK = re.compile(r"^track:(\d+)$")


class Why(IntEnum):
    """Why a frame's face was chosen (or none)."""

    NOBODY = 0  # no face, or nobody speaks in the source here
    SPEAKS = 1  # it speaks in the source here
    SPOKE_NEAR = 2  # nobody speaks here, the dub is voiced, and it speaks nearest in the shot
    CHOSEN = 3  # by --speaker largest, X,Y or track:N
    NO_SOURCE_AUDIO = 4  # auto, but the source has no audio: the largest face
    NO_SPEAKER_SEEN = 5  # auto, but no face speaks anywhere in the source: the largest face


@dataclass(frozen=True)
class SpeakerPolicy:
    kind: str  # auto | largest | point | track
    point: tuple[float, float] | None = None
    track: int | None = None


def parse_speaker(text: str) -> SpeakerPolicy:
    """The `--speaker` value -> a policy; ValueError naming the value and what is allowed."""
    if text in ("auto", "largest"):
        return SpeakerPolicy(text)
    if match := _TRACK.match(text):
        return SpeakerPolicy("track", track=int(match.group(1)))
    if match := _POINT.match(text):
        try:
            x, y = float(match.group(1)), float(match.group(2))
        except ValueError:
            x = y = -1.0
        if 0 <= x <= 1 and 0 <= y <= 1:
            return SpeakerPolicy("point", point=(x, y))
        raise ValueError(f"speaker {text!r}: a point's x and y must each be within 0..1")
    raise ValueError(f"speaker {text!r} is not a policy: use {SPEAKER_HELP}")


@dataclass(eq=False)
class OutputFaces:
    """Per output frame of a span: the dubbed track id (0: none), why, and its landmarks."""

    track: np.ndarray  # (n,) int32
    why: np.ndarray  # (n,) int8
    landmarks: np.ndarray  # (n, 68, 2) float32, NaN where no face is dubbed
    passed: np.ndarray  # (n,) bool: faces are there but none is dubbed


@dataclass(eq=False)
class FaceChoice:
    """The choice over a job's source frames; `for_output` applies it to output frames."""

    tracks: dict[int, Track]
    shot: np.ndarray  # (N,) int32
    primary: np.ndarray  # (N,) int32 track per source frame, 0: none
    why: np.ndarray  # (N,) int8
    fallback: np.ndarray  # (N,) int32 auto: the nearest speaker of the shot, for voiced dub frames
    scores: dict[int, np.ndarray]  # track id -> speaking score over its span (auto only)
    faces_seen: np.ndarray  # (N,) bool: some track is seen in the frame
    detector: str = ""  # what scored who speaks: "syncnet" or "mouth-loudness" (auto only)
    threshold: float = SPEAKING  # the score at or above which a face speaks

    def decide(self, source: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output frames reading source frames `source` (n,), the dub silent where `rest` (n,)
        -> (track (n,) int32, why (n,) int8)."""
        track = self.primary[source].copy()
        why = self.why[source].copy()
        near = (track == 0) & (self.fallback[source] > 0) & ~rest
        track[near] = self.fallback[source][near]
        why[near] = Why.SPOKE_NEAR
        return track.astype(np.int32), why.astype(np.int8)

    def for_output(self, source: np.ndarray, rest: np.ndarray) -> OutputFaces:
        """`decide`, with the dubbed track's landmarks per output frame."""
        track, why = self.decide(source, rest)
        landmarks = np.full((len(source), 68, 2), np.nan, np.float32)
        for i, (t, s) in enumerate(zip(track, source, strict=True)):
            if t:
                landmarks[i] = self.tracks[int(t)].landmarks[s - self.tracks[int(t)].start]
        return OutputFaces(track, why, landmarks, (track == 0) & self.faces_seen[source])

    def score_at(self, track: int, frame: int) -> float:
        found = self.scores.get(track)
        start = self.tracks[track].start if track in self.tracks else 0
        return float(found[frame - start]) if found is not None and 0 <= frame - start < len(found) else float("nan")


def _over(track: Track, values: np.ndarray, a: int, b: int) -> np.ndarray:
    """A per-frame array of a track's span, over frames [a, b) instead (zeros outside its span)."""
    out = np.zeros(b - a, values.dtype)
    lo, hi = max(a, track.start), min(b, track.stop)
    if lo < hi:
        out[lo - a : hi - a] = values[lo - track.start : hi - track.start]
    return out


def seen_in(track: Track, a: int, b: int) -> np.ndarray:
    """(b - a,) bool: the track is seen in frames [a, b)."""
    return _over(track, track.seen, a, b)


def _shots(values: np.ndarray) -> list[tuple[int, int]]:
    """Frame spans [a, b) of the runs of equal values (of shot numbers: the shots)."""
    edges = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1, [len(values)]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _largest(tracks: list[Track], shot: np.ndarray) -> np.ndarray:
    """Follow the largest face of a shot while it is seen; then the largest again. Dense arrays are
    per shot (its tracks x its frames), never per film."""
    primary = np.zeros(len(shot), np.int32)
    in_shot = _by_shot(tracks)
    for a, b in _shots(shot):
        members = in_shot.get(int(shot[a]), [])
        if not members:
            continue
        seen = np.stack([seen_in(t, a, b) for t in members])  # (G, b - a)
        size = np.stack([np.where(seen_in(t, a, b), _over(t, t.sizes(), a, b), -1.0) for t in members])
        current = -1
        for f in range(b - a):
            if current < 0 or not seen[current, f]:
                current = int(np.argmax(size[:, f])) if seen[:, f].any() else -1
            primary[a + f] = members[current].id if current >= 0 else 0
    return primary


def _by_shot(tracks: list[Track]) -> dict[int, list[Track]]:
    grouped: dict[int, list[Track]] = {}
    for t in tracks:
        grouped.setdefault(t.shot, []).append(t)
    return grouped


def _nearest_point(
    tracks: list[Track], shot: np.ndarray, point: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    primary = np.zeros(len(shot), np.int32)
    target = np.array([point[0] * size[0], point[1] * size[1]])
    for members in _by_shot(tracks).values():
        distance = [float(np.linalg.norm(np.nanmean(t.centres(), axis=0) - target)) for t in members]
        best = members[int(np.argmin(distance))]
        primary[best.start : best.stop][best.seen] = best.id
    return primary


def _steady(primary: np.ndarray, shot: np.ndarray, tracks: dict[int, Track], min_span: int) -> np.ndarray:
    """Runs shorter than `min_span` within a shot take the previous run's track (else the next's)
    where that track is seen."""
    out = primary.copy()
    spans = _shots(out.astype(np.int64) * (int(shot.max(initial=0)) + 1) + shot)  # runs of one (track, shot)
    for k, (a, b) in enumerate(spans):
        if b - a >= min_span:
            continue
        neighbours = [spans[k - 1] if k > 0 else None, spans[k + 1] if k + 1 < len(spans) else None]
        for other in neighbours:
            if other is not None and shot[other[0]] == shot[a]:
                value = int(out[other[0]])
                out[a:b] = np.where(seen_in(tracks[value], a, b), value, 0) if value else 0
                break
    return out


def _nearest_speaker(primary: np.ndarray, shot: np.ndarray, tracks: dict[int, Track]) -> np.ndarray:
    """Per frame nobody speaks in: the speaker nearest in time in the same shot, if seen there."""
    n = len(primary)
    fallback = np.zeros(n, np.int32)
    last = np.zeros(n, np.int32)
    last_at = np.full(n, -(10**9))
    nxt = np.zeros(n, np.int32)
    next_at = np.full(n, 10**9)
    for f in range(n):
        if f and shot[f] == shot[f - 1]:
            last[f], last_at[f] = (primary[f - 1], f - 1) if primary[f - 1] else (last[f - 1], last_at[f - 1])
    for f in range(n - 2, -1, -1):
        if shot[f] == shot[f + 1]:
            nxt[f], next_at[f] = (primary[f + 1], f + 1) if primary[f + 1] else (nxt[f + 1], next_at[f + 1])
    for f in np.flatnonzero(primary == 0):
        options = sorted(((f - last_at[f], last[f]), (next_at[f] - f, nxt[f])))
        for _, t in options:
            if t and tracks[int(t)].present(int(f)):
                fallback[f] = t
                break
    return fallback


def choose(
    tracks: list[Track],
    shot: np.ndarray,
    level_db: np.ndarray | None,
    voiced: np.ndarray | None,
    speaker: str,
    fps: Fraction,
    frame_size: tuple[int, int],
    min_span_seconds: float,
    video: str,
) -> FaceChoice:
    """Apply a `--speaker` policy to a job's tracks; `level_db` (N,) is the source audio's level per
    frame and `voiced` (N,) where it carries speech, both None when the source has no audio."""
    policy = parse_speaker(speaker)
    n = len(shot)
    by_id = {t.id: t for t in tracks}
    faces_seen = np.zeros(n, bool)
    for t in tracks:
        faces_seen[t.start : t.stop] |= t.seen
    scores: dict[int, np.ndarray] = {}
    detector, threshold = "", SPEAKING
    fallback = np.zeros(n, np.int32)
    why = np.full(n, Why.CHOSEN, np.int8)
    if policy.kind == "track":
        if policy.track not in by_id:
            known = f"1..{len(tracks)}" if tracks else "none (no face found)"
            raise InputError(f"--speaker track:{policy.track}: video {video} has tracks {known}; see `musedub faces`")
        primary = np.where(seen_in(by_id[int(policy.track)], 0, n), policy.track, 0).astype(np.int32)
    elif policy.kind == "point":
        assert policy.point is not None
        primary = _nearest_point(tracks, shot, policy.point, frame_size)
    elif policy.kind == "largest" or level_db is None or voiced is None:
        primary = _largest(tracks, shot)
        if policy.kind == "auto":
            why[:] = Why.NO_SOURCE_AUDIO
    else:
        detector = "syncnet" if any(t.sync is not None for t in tracks) else "mouth-loudness"
        threshold = SYNC_SPEAKING if detector == "syncnet" else SPEAKING
        best = np.full(n, threshold, np.float32)
        primary = np.zeros(n, np.int32)
        for t in tracks:
            if detector == "syncnet":  # a track SyncNet never saw for 16 frames running does not speak
                scores[t.id] = np.nan_to_num(t.sync, nan=0.0) if t.sync is not None else np.zeros(len(t.seen))
            else:
                scores[t.id] = speaking_scores(mouth_opening(t.landmarks), t.start, level_db, voiced, fps)
            span = slice(t.start, t.stop)
            wins = t.seen & (scores[t.id] >= best[span])
            primary[span][wins] = t.id
            best[span][wins] = scores[t.id][wins]
        primary = _steady(primary, shot, by_id, max(1, round(min_span_seconds * fps)))
        fallback = _nearest_speaker(primary, shot, by_id)
        why[:] = Why.SPEAKS
        if not primary.any():  # a detector that sees nobody speak in a whole video has failed, or
            primary = _largest(tracks, shot)  # it is all voice-over: dub the largest face, and say so
            why[:] = Why.NO_SPEAKER_SEEN
    why[primary == 0] = Why.NOBODY
    return FaceChoice(by_id, shot, primary, why, fallback, scores, faces_seen, detector, threshold)
