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


def frame_energy(samples: np.ndarray, rate: int, fps: Fraction, frames: int, first_frame: int = 0) -> np.ndarray:
    """RMS level in dBFS of the samples under each video frame -> float32 (frames,).

    `samples` (n,) start at the time of video frame `first_frame`; frames past the samples get FLOOR_DB.
    """
    edges = np.array([round(Fraction(first_frame + i) * rate / fps) for i in range(frames + 1)], np.int64)
    edges -= edges[0]
    power = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])  # prefix sums of x^2
    lo, hi = np.minimum(edges[:-1], len(samples)), np.minimum(edges[1:], len(samples))
    mean = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
    level = 10 * np.log10(np.maximum(mean, 1e-10))
    return np.maximum(level, FLOOR_DB).astype(np.float32)


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
