"""Hard shot cuts from colour histograms of consecutive frames.

Tracking and smoothing reset at a cut, so a box never slides from one shot's face to the next.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB = (96, 54)
CUT_CORRELATION = 0.5  # histogram correlation below this between neighbours is a cut


def colour_signature(frame: np.ndarray) -> np.ndarray:
    """RGB frame -> a normalised 8x8x8 HSV histogram of a thumbnail, float32 (512,)."""
    thumb = cv2.resize(frame, THUMB, interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 8], [0, 180, 0, 256, 0, 256]).reshape(-1)
    return hist / max(float(hist.sum()), 1.0)


def is_cut(previous: np.ndarray | None, current: np.ndarray) -> bool:
    """True when two signatures look like different shots (the first frame starts one)."""
    if previous is None:
        return True
    return float(cv2.compareHist(previous, current, cv2.HISTCMP_CORREL)) < CUT_CORRELATION
