"""Which output frames a preview looks at, so its cost is bounded whatever the video's length:
STILLS frames for the before/after pictures, and one window of at most PLOT_SECONDS (the first
of the longest span where a face was dubbed) tracked frame by frame for the sync plot, whose
first CLIP_SECONDS make the mouth clip. Landmarks run on at most PLOT_SECONDS x fps frames."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

STILLS = 4
PLOT_SECONDS = 10.0
CLIP_SECONDS = 3.0


def dubbed_spans(report: dict[str, Any], total: int) -> list[tuple[int, int]]:
    """Output frame spans where the report says a face was dubbed (a report without the account
    of faces: the whole output)."""
    spans = report.get("speakers", {}).get("spans")
    if spans is None:
        return [(0, total)] if total else []
    found = [(int(s["frames"][0]), min(int(s["frames"][1]), total)) for s in spans if s.get("track") is not None]
    return [(a, b) for a, b in found if b > a]


def still_frames(spans: list[tuple[int, int]], total: int, count: int = STILLS) -> np.ndarray:
    """`count` output frames evenly spread over the dubbed frames (over all frames if none were)."""
    frames = np.concatenate([np.arange(a, b) for a, b in spans]) if spans else np.arange(total)
    if len(frames) == 0:
        return frames
    return np.unique(frames[np.linspace(0, len(frames) - 1, count).round().astype(np.int64)])


def plot_window(spans: list[tuple[int, int]], total: int, fps: Fraction) -> tuple[int, int]:
    """[start, stop): the first PLOT_SECONDS of the longest dubbed span (of the output if none)."""
    start, stop = max(spans, key=lambda s: (s[1] - s[0], -s[0])) if spans else (0, total)
    return start, min(stop, start + max(1, round(PLOT_SECONDS * fps)))


def clip_frames(fps: Fraction) -> int:
    return max(1, round(CLIP_SECONDS * fps))
