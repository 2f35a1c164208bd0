"""Face crop and paste-back geometry from 68 iBUG landmarks, as the published weights expect.

Crop box: from the nose bridge (landmark 29) down to the chin, mirrored upwards by the same
distance; v1.5 extends the bottom by `extra_margin` px, v1.0 shifts the nose point by `bbox_shift`.
Paste-back works in a square 1.5x the box, centred on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import cv2
import numpy as np

from musedub.models.constants import CROP_SIZE

NOSE_BRIDGE = 29
PASTE_EXPAND = 1.5

CropVersion = Literal["v1.5", "v1.0"]


@dataclass(frozen=True)
class Box:
    """Pixel box [x1, x2) x [y1, y2) in frame coordinates."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1


def crop_box(
    landmarks: np.ndarray,
    frame_height: int,
    version: CropVersion = "v1.5",
    extra_margin: int = 10,
    bbox_shift: int = 0,
) -> Box | None:
    """Landmarks (68, 2) as (x, y) -> the crop box, or None when it is empty."""
    if landmarks.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2) in iBUG order, got {landmarks.shape}")
    nose_y = float(landmarks[NOSE_BRIDGE, 1]) + (bbox_shift if version == "v1.0" else 0)
    bottom = float(landmarks[:, 1].max())
    top = max(0.0, nose_y - (bottom - nose_y))
    box = Box(int(landmarks[:, 0].min()), int(top), int(landmarks[:, 0].max()), int(bottom))
    if version == "v1.5":
        box = Box(box.x1, box.y1, box.x2, min(box.y2 + extra_margin, frame_height))
    return box if box.width > 0 and box.height > 0 else None


def crop_face(frame: np.ndarray, box: Box) -> np.ndarray:
    """RGB frame (H, W, 3) -> the box resized to (256, 256, 3) with Lanczos, as in training."""
    region = frame[max(box.y1, 0) : box.y2, max(box.x1, 0) : box.x2]
    return cv2.resize(region, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LANCZOS4)


def paste_square(box: Box) -> Box:
    """The square of side 2*int(max(w, h)//2 * 1.5) centred on `box` (may extend past the frame)."""
    cx, cy = (box.x1 + box.x2) // 2, (box.y1 + box.y2) // 2
    half = int(max(box.width, box.height) // 2 * PASTE_EXPAND)
    return Box(cx - half, cy - half, cx + half, cy + half)


def blur_kernel(square_width: int) -> int:
    """Odd Gaussian kernel size for feathering the paste mask: int(0.05 * W // 2 * 2) + 1."""
    return int(0.05 * square_width // 2 * 2) + 1


class FaceStatus(IntEnum):
    """Why a frame is, or is not, regenerated; frames other than OK pass through unchanged."""

    OK = 0
    NO_FACE = 1
    TOO_SMALL = 2
    LEAVING_FRAME = 3
    NOT_CHOSEN = 4  # faces are there, but `--speaker` dubs none of them here (e.g. nobody speaks)


def face_status(landmarks: np.ndarray, box: Box | None, width: int, height: int, min_face: int) -> FaceStatus:
    """Classify one frame's face: none found, smaller than `min_face` px, or partly outside the frame."""
    if box is None or np.isnan(landmarks).any():
        return FaceStatus.NO_FACE
    if box.x1 < 0 or box.x2 > width or float(landmarks[:, 1].max()) > height or float(landmarks[:, 1].min()) < 0:
        return FaceStatus.LEAVING_FRAME
    if min(box.width, box.height) < min_face:
        return FaceStatus.TOO_SMALL
    return FaceStatus.OK
