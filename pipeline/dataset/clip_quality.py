"""Per-clip quality figures and the flags a training set is filtered on.

Figures are kept as numbers (so a user can pick other thresholds later); flags name the ones
that fall past the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
SPEECH_RMS = 0.01  # -40 dBFS over a 40 ms frame counts as sound
MIN_SPEECH_FRACTION = 0.2
MAX_JITTER = 0.02  # mean landmark step per frame as a fraction of the face height
MIN_MOUTH_MOTION = 0.005  # std of the inner-mouth opening as a fraction of the face height
MIN_SHARPNESS = 20.0  # variance of the Laplacian of the grey lower half of the 256 crop
UPPER_LIP, LOWER_LIP = 62, 66  # inner-mouth landmarks, iBUG order


@dataclass(frozen=True)
class ClipQuality:
    face_min_px: float
    face_median_px: float
    jitter: float
    mouth_motion: float
    speech_fraction: float
    sharpness: float  # NaN when crops were not made

    def flags(self, stage2_min_face: int) -> list[str]:
        flags = []
        if self.face_min_px < stage2_min_face:
            flags.append("below_stage2_face")
        if self.jitter > MAX_JITTER:
            flags.append("jittery")
        if self.mouth_motion < MIN_MOUTH_MOTION:
            flags.append("static_mouth")
        if self.speech_fraction < MIN_SPEECH_FRACTION:
            flags.append("silent")
        if self.sharpness < MIN_SHARPNESS:
            flags.append("blurry")
        return flags


def clip_quality(landmarks: np.ndarray, boxes: np.ndarray, audio: np.ndarray, crops: np.ndarray | None) -> ClipQuality:
    """landmarks (n, 68, 2), boxes (n, 4) x1 y1 x2 y2, audio (n * 640,) float32, crops (n, 256, 256, 3)."""
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).astype(np.float64)
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1).astype(np.float64)
    steps = np.linalg.norm(np.diff(landmarks, axis=0), axis=-1).mean(axis=-1)  # (n-1,) mean point motion
    jitter = float(np.mean(steps / heights[1:])) if len(steps) else 0.0
    opening = (landmarks[:, LOWER_LIP, 1] - landmarks[:, UPPER_LIP, 1]) / heights
    usable = len(audio) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
    frames = audio[:usable].reshape(-1, SAMPLES_PER_FRAME)  # (n, 640) one row per video frame
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) if len(frames) else np.zeros(0)
    sharpness = float("nan")
    if crops is not None and len(crops):
        grey = [cv2.cvtColor(c[c.shape[0] // 2 :], cv2.COLOR_RGB2GRAY) for c in crops]
        sharpness = float(np.mean([cv2.Laplacian(g, cv2.CV_64F).var() for g in grey]))
    return ClipQuality(
        face_min_px=float(sides.min()),
        face_median_px=float(np.median(sides)),
        jitter=jitter,
        mouth_motion=float(np.std(opening)),
        speech_fraction=float(np.mean(rms > SPEECH_RMS)) if len(rms) else 0.0,
        sharpness=sharpness,
    )
