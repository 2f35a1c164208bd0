"""The sync plot: the dubbed mouth's opening against the dub audio's loudness, frame by frame,
as inline SVG (no script, no library), with the correlation of the two and the lag that fits best.

A mouth in sync opens with the syllables it hears, so the two curves rise and fall together; a
constant delay shows as a best lag other than 0. Both curves are scaled to their own range in the
window: the plot compares shapes and timing, not amounts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from musedub.pipeline.face.speaker import MAX_OFFSET

WIDTH, HEIGHT = 900, 236
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 26, 30  # margins (px) around the plot area; the legend sits on top
ENVELOPE_FLOOR_DB = -60.0  # quieter frames are drawn as silence
MOUTH_COLOUR, AUDIO_COLOUR, REST_COLOUR = "#d9480f", "#1c7ed6", "#e9ecef"


@dataclass(frozen=True)
class SyncFit:
    """Pearson r of mouth opening and audio level at lag 0, and the lag (frames; > 0: the mouth
    follows the audio) in +-MAX_OFFSET with the highest r; None where too few frames have a face."""

    r: float | None
    best_lag: int | None
    best_r: float | None
    frames: int  # frames with both a mouth and audio


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float | None, int]:
    valid = ~np.isnan(x) & ~np.isnan(y)
    n = int(valid.sum())
    if n < 3 or np.std(x[valid]) == 0 or np.std(y[valid]) == 0:
        return None, n
    return float(np.corrcoef(x[valid], y[valid])[0, 1]), n


def sync_fit(opening: np.ndarray, level_db: np.ndarray) -> SyncFit:
    """(T,) mouth opening (NaN: no face) and (T,) audio level in dB over the same frames."""
    r, n = _pearson(opening, level_db)
    fits = {}
    for lag in range(-MAX_OFFSET, MAX_OFFSET + 1):
        mouth = opening[lag:] if lag >= 0 else opening[:lag]  # mouth at t + lag against audio at t
        audio = level_db[: len(level_db) - lag] if lag >= 0 else level_db[-lag:]
        fits[lag] = _pearson(mouth, audio)[0]
    scored = {lag: v for lag, v in fits.items() if v is not None}
    if not scored:
        return SyncFit(r, None, None, n)
    best = max(scored, key=lambda lag: (scored[lag], -abs(lag)))
    return SyncFit(r, best, scored[best], n)


def _scaled(values: np.ndarray) -> np.ndarray:
    """To 0..1 over the finite values (a flat series sits at 0)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values
    low, high = float(finite.min()), float(finite.max())
    return (values - low) / (high - low) if high > low else values * 0.0


def _polylines(x: np.ndarray, y: np.ndarray, colour: str) -> list[str]:
    """One polyline per run of finite points: a frame without a face breaks the line."""
    lines, run = [], []
    for px, py in zip(x, y, strict=True):
        if np.isfinite(py):
            run.append(f"{px:.1f},{py:.1f}")
        elif run:
            lines.append(run)
            run = []
    if run:
        lines.append(run)
    return [
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{" ".join(points)}"/>'
        for points in lines
        if len(points) > 1
    ]


def sync_svg(start: int, opening: np.ndarray, level_db: np.ndarray, fps: Fraction, rests: list[tuple[int, int]]) -> str:
    """The plot over output frames [start, start + T); `rests`: output frame spans where the dub
    audio is silent (shaded)."""
    frames = len(opening)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x = LEFT + np.arange(frames) * inner_w / max(frames - 1, 1)
    mouth = TOP + (1 - _scaled(opening.astype(np.float64))) * inner_h
    envelope = _scaled(np.maximum(level_db.astype(np.float64), ENVELOPE_FLOOR_DB))
    audio = TOP + (1 - envelope) * inner_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="mouth opening and dub audio level over time">'
    ]
    step = inner_w / max(frames - 1, 1)
    for a, b in rests:
        a, b = max(a, start), min(b, start + frames)
        if b > a:
            parts.append(
                f'<rect x="{LEFT + (a - start) * step:.1f}" y="{TOP}" width="{(b - a) * step:.1f}" '
                f'height="{inner_h}" fill="{REST_COLOUR}"/>'
            )
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#868e96"/>')
    first, last = float(start / fps), float((start + frames - 1) / fps)
    tick = 1.0 if last - first <= 12 else 5.0
    for second in np.arange(np.ceil(first / tick) * tick, last + 1e-9, tick):
        px = LEFT + (second - first) * float(fps) * step
        bottom = TOP + inner_h
        parts.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="#495057"/>')
        parts.append(f'<text x="{px:.1f}" y="{HEIGHT - 8}" font-size="11" text-anchor="middle">{second:g} s</text>')
    parts += _polylines(x, audio, AUDIO_COLOUR)
    parts += _polylines(x, mouth, MOUTH_COLOUR)
    legend = [("mouth opening (output landmarks)", MOUTH_COLOUR), ("dub audio level (RMS dB)", AUDIO_COLOUR)]
    for i, (label, colour) in enumerate(legend):
        x = LEFT + 300 * i
        swatch = f'x1="{x}" y1="10" x2="{x + 18}" y2="10"'
        parts.append(f'<line {swatch} stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{x + 22}" y="14" font-size="11">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
