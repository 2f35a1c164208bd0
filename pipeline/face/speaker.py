"""Who speaks: each track's mouth opening against the loudness of the source's own audio.

A speaking mouth opens and closes with the syllables it says. Per frame, a track's score is the
Pearson correlation between its inner-lip gap and the source's level in dB over a window of about
a second, at the track's audio-visual offset (searched over +-`MAX_OFFSET` frames, a cost per
frame of offset). A still mouth (std under `MIN_MOUTH_STD`) or a window with (almost) no voiced
audio scores 0. No weights are needed.

What it gets wrong: an off-screen speaker or a voice-over makes nobody on screen speak (right) but
a face that moves its lips in time by chance can score; a dubbed crowd scene has one voice for many
mouths; a profile view hides the inner lips from the landmark model.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

MAX_OFFSET = 5  # frames of audio-visual offset searched each way (once per track)
OFFSET_COST = 0.05  # correlation given up per frame of offset: most sources are in sync
MIN_MOUTH_STD = 0.006  # inner-lip gap / face height: below this a mouth is still (landmark jitter)
MIN_VOICED = 0.2  # a window needs this share of voiced audio frames to score
MIN_SEEN = 0.6  # ... and this share of frames with the face seen
SPEAKING = 0.6  # a score at or above this speaks
SYNC_SPEAKING = 0.5  # with SyncNet (sync_speaker.py): its P(in sync), trained with BCE, at or above this


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (...) inner-lip gap (mean of the 3 vertical pairs) over the face's height."""
    pairs = np.array([(61, 67), (62, 66), (63, 65)])
    gap = np.linalg.norm(landmarks[..., pairs[:, 0], :] - landmarks[..., pairs[:, 1], :], axis=-1).mean(axis=-1)
    height = landmarks[..., 1].max(axis=-1) - landmarks[..., 1].min(axis=-1)
    return gap / np.maximum(height, 1e-6)


def _window_sums(values: np.ndarray, half: int) -> np.ndarray:
    """Centred sums over +-half frames (clipped at the ends) -> (n,)."""
    total = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(len(values))
    return total[np.minimum(index + half + 1, len(values))] - total[np.maximum(index - half, 0)]


def _rolling_correlation(x: np.ndarray, y: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson correlation of x and y over centred windows, NaNs left out -> (corr, count, std of x)."""
    valid = ~np.isnan(x) & ~np.isnan(y)
    x0, y0 = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    n = _window_sums(valid.astype(np.float64), half)
    sx, sy = _window_sums(x0, half), _window_sums(y0, half)
    sxx, syy, sxy = _window_sums(x0 * x0, half), _window_sums(y0 * y0, half), _window_sums(x0 * y0, half)
    vx = np.maximum(n * sxx - sx * sx, 0.0)
    vy = np.maximum(n * syy - sy * sy, 0.0)
    corr = (n * sxy - sx * sy) / np.sqrt(np.maximum(vx * vy, 1e-30))
    std_x = np.sqrt(vx) / np.maximum(n, 1)
    return np.where((vx > 0) & (vy > 0), corr, 0.0), n, std_x


def speaking_scores(
    opening: np.ndarray, start: int, level_db: np.ndarray, voiced: np.ndarray, fps: Fraction
) -> np.ndarray:
    """A track's speaking score per frame -> float32 (n,), at most 1.

    `opening` (n,) covers source frames [start, start + n), NaN where the face is not seen;
    `level_db` and `voiced` (N,) cover the whole source. The offset is searched once per track,
    over its whole span, each frame of offset costing OFFSET_COST: speech has a syllable every
    ~0.2 s, so a window-by-window search would find a beat to line up with in any moving mouth.
    """
    n = len(opening)
    total = len(level_db)
    if n == 0 or total == 0:
        return np.zeros(n, np.float32)
    half = max(2, round(fps / 2))  # a window of about one second
    window = 2 * half + 1
    loud = float(np.nanpercentile(level_db, 95))  # NaN: a span whose audio could not be read
    level = np.maximum(level_db.astype(np.float64), loud - 40.0)  # depths of silence carry no rhythm; NaN stays
    frames = np.arange(start, start + n)
    mouth = opening.astype(np.float64)

    def heard(offset: int) -> np.ndarray:
        at = frames + offset
        return np.where((at >= 0) & (at < total), level[np.clip(at, 0, total - 1)], np.nan)

    offset = max(range(-MAX_OFFSET, MAX_OFFSET + 1), key=lambda d: _correlation(mouth, heard(d)) - OFFSET_COST * abs(d))
    corr, count, std = _rolling_correlation(mouth, heard(offset), half)
    speech = _window_sums(voiced[frames].astype(np.float64), half) / window
    valid = (count >= MIN_SEEN * window) & (std >= MIN_MOUTH_STD) & (speech >= MIN_VOICED)
    return np.where(valid, corr - OFFSET_COST * abs(offset), 0.0).astype(np.float32)


def speaking_frames(
    landmarks: np.ndarray, shot: np.ndarray, level_db: np.ndarray, fps: Fraction, voiced: np.ndarray, min_span: int
) -> np.ndarray:
    """One followed face (N, 68, 2) (NaN where not found), scored shot by shot -> (N,) bool where it
    speaks; pauses shorter than `min_span` frames between speaking frames of a shot count as speech."""
    speaks = np.zeros(len(shot), bool)
    edges = np.concatenate([[0], np.flatnonzero(shot[1:] != shot[:-1]) + 1, [len(shot)]])
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        speaks[a:b] = speaking_scores(mouth_opening(landmarks[a:b]), a, level_db, voiced, fps) >= SPEAKING
        talking = np.flatnonzero(speaks[a:b]) + a
        for x, y in zip(talking[:-1].tolist(), talking[1:].tolist(), strict=True):
            if 1 < y - x <= min_span:
                speaks[x:y] = True
    return speaks


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation over the frames where both are known; 0 when either is constant."""
    known = ~np.isnan(x) & ~np.isnan(y)
    if known.sum() < 3 or x[known].std() == 0 or y[known].std() == 0:
        return 0.0
    return float(np.corrcoef(x[known], y[known])[0, 1])
