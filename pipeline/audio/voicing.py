"""Loudness per video frame and a voice-activity rule on it: no model, no download.

The dub audio's silent spans decide where the dubbed mouth rests; the source audio's loudness is
what a speaking mouth moves with (active speaker detection).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

FLOOR_DB = -100.0  # digital silence
QUIET_BELOW_PEAK_DB = 30.0  # a frame this far under the loud frames (95th percentile) is silent
ABSOLUTE_QUIET_DB = -55.0  # ... and any frame under this level is silent, however quiet the whole file is
MIN_REST_SECONDS = 0.3  # shorter pauses are part of speech: the mouth keeps talking through them


def frame_edges(first: int, count: int, rate: int, fps: Fraction) -> np.ndarray:
    """The sample where each of video frames first .. first + count starts -> int64 (count,):
    round(frame * rate / fps), halves to even as Python rounds, in integers (a film has millions)."""
    frame = np.arange(first, first + count, dtype=np.int64)
    quotient, remainder = np.divmod(frame * (rate * fps.denominator), fps.numerator)
    half = 2 * remainder
    return quotient + ((half > fps.numerator) | ((half == fps.numerator) & (quotient % 2 == 1)))


class FrameLevels:
    """RMS level per video frame of audio fed in pieces, so a 2-hour track (460 MB of samples) is
    never held whole: per frame only the sum of squares is kept.

    The samples start at the time of video frame `first_frame`."""

    def __init__(self, rate: int, fps: Fraction, first_frame: int = 0) -> None:
        self.rate, self.fps, self.first = rate, fps, first_frame
        self._measured = 0  # samples already summed into frames
        self._origin = int(frame_edges(first_frame, 1, rate, fps)[0])
        self._sums = np.zeros(0, np.float64)  # per frame from first_frame
        self._edges = np.zeros(0, np.int64)  # where those frames start, from the origin
        self._pending: list[np.ndarray] = []
        self._pending_count = 0

    def add(self, piece: np.ndarray) -> None:
        """Take the next samples; decoders give ~1000 at a time, they are measured a second at a time."""
        self._pending.append(piece)
        self._pending_count += len(piece)
        if self._pending_count >= self.rate:
            self._measure()

    def _measure(self) -> None:
        if not self._pending_count:
            return
        piece = np.concatenate(self._pending)
        self._pending, self._pending_count = [], 0
        start, stop = self._measured, self._measured + len(piece)  # samples [start, stop) after the origin
        lo = int(np.searchsorted(self._edges_until(stop), start, side="right")) - 1
        edges = self._edges[lo:]  # frames lo.. that the piece can touch
        frame = np.searchsorted(edges, np.arange(start, stop), side="right") - 1  # (n,) frame - lo per sample
        sums = np.bincount(frame, weights=np.square(piece, dtype=np.float64))
        self._sums[lo : lo + len(sums)] += sums
        self._measured = stop

    @property
    def samples(self) -> int:
        """Samples fed so far (measured or waiting for a second's worth)."""
        return self._measured + self._pending_count

    def _edges_until(self, stop: int) -> np.ndarray:
        """Frame starts (relative to the origin) far enough to cover samples up to `stop`."""
        while not len(self._edges) or self._edges[-1] < stop:
            count = max(2 * len(self._edges), 1024)
            self._edges = frame_edges(self.first, count, self.rate, self.fps) - self._origin
            self._sums = np.concatenate([self._sums, np.zeros(count - len(self._sums))])
        return self._edges

    def levels(self, frames: int) -> np.ndarray:
        """dBFS of frames first .. first + frames -> float32 (frames,); frames past the samples get FLOOR_DB."""
        self._measure()
        edges = frame_edges(self.first, frames + 1, self.rate, self.fps) - self._origin
        lo, hi = np.minimum(edges[:-1], self.samples), np.minimum(edges[1:], self.samples)
        sums = np.zeros(frames, np.float64)
        known = min(frames, len(self._sums))
        sums[:known] = self._sums[:known]
        level = 10 * np.log10(np.maximum(sums / np.maximum(hi - lo, 1), 1e-10))
        return np.maximum(level, FLOOR_DB).astype(np.float32)


def frame_energy(samples: np.ndarray, rate: int, fps: Fraction, frames: int, first_frame: int = 0) -> np.ndarray:
    """RMS level in dBFS of the samples under each video frame -> float32 (frames,).

    `samples` (n,) start at the time of video frame `first_frame`; frames past the samples get FLOOR_DB.
    """
    levels = FrameLevels(rate, fps, first_frame)
    for start in range(0, len(samples), rate):  # a second at a time: bounded temporaries
        levels.add(samples[start : start + rate])
    return levels.levels(frames)


def voiced_frames(level_db: np.ndarray) -> np.ndarray:
    """Frames loud enough to carry speech -> bool (n,), relative to the file's own loud frames."""
    if len(level_db) == 0:
        return np.zeros(0, bool)
    if np.isnan(level_db).all():
        return np.zeros(len(level_db), bool)
    loud = float(np.nanpercentile(level_db, 95))  # NaN frames (unreadable audio) are not voiced
    return level_db > max(loud - QUIET_BELOW_PEAK_DB, ABSOLUTE_QUIET_DB)


def runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal values -> [(start, stop, value)]."""
    if len(values) == 0:
        return []
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(values)]])
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, stops, strict=True)]


def rest_mask(level_db: np.ndarray, fps: Fraction) -> np.ndarray:
    """Frames inside silent spans of at least MIN_REST_SECONDS -> bool (n,): where the mouth rests."""
    silent = ~voiced_frames(level_db)
    shortest = max(1, round(MIN_REST_SECONDS * fps))
    rest = np.zeros(len(silent), bool)
    for start, stop, value in runs(silent):
        if value and stop - start >= shortest:
            rest[start:stop] = True
    return rest
