"""Paste a generated face back into its frame, touching only the feathered lower face.

The region is the reference's BiSeNet 'jaw' parsing when its weights are present
(`parsing_mask.py`), else the area between the jaw line and the base of the nose from the
landmarks; either is eroded and then blurred with the reference's kernel so the feather stays
inside the face, and kept to the lower half of the paste square. Outside it every pixel is the
source's, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

from musedub.models.constants import CROP_SIZE
from musedub.pipeline.face.crop_geometry import Box, blur_kernel, paste_square

JAW_TO_NOSE = [*range(1, 16), 35, 34, 33, 32, 31]  # jaw line left to right, back along the nose base


def landmark_region(landmarks: np.ndarray, box: Box) -> np.ndarray:
    """uint8 (box.height, box.width): 255 between the jaw line and the nose base."""
    polygon = np.round(landmarks[JAW_TO_NOSE] - (box.x1, box.y1)).astype(np.int32)  # (20, 2) in box pixels
    mask = np.zeros((box.height, box.width), np.uint8)
    cv2.fillPoly(mask, [polygon], 255)
    return mask


def feathered_lower_half(region: np.ndarray, box: Box) -> np.ndarray:
    """uint8 region in box pixels -> float32 (box.height, box.width) in [0, 1] for `blend_face`.

    Eroded by the reference's blur kernel first, so the blur spreads back to the region's edge
    instead of past it, then kept to the lower half of the paste square.
    """
    square = paste_square(box)
    kernel = blur_kernel(square.width)
    eroded = cv2.erode(region, np.ones((kernel, kernel), np.uint8))
    soft = np.clip(cv2.GaussianBlur(eroded.astype(np.float32) / 255.0, (kernel, kernel), 0), 0.0, 1.0)
    soft[: max(0, (square.y1 + square.y2) // 2 - box.y1)] = 0.0
    return soft


def lower_face_mask(landmarks: np.ndarray, box: Box) -> np.ndarray:
    """float32 (box.height, box.width) in [0, 1]: where the generated face replaces the source."""
    return feathered_lower_half(landmark_region(landmarks, box), box)


def blend_face(frame: np.ndarray, generated: np.ndarray, box: Box, mask: np.ndarray) -> np.ndarray:
    """A copy of RGB `frame` (uint8, or uint16 for a deep source) with the (256, 256, 3) uint8
    `generated` crop resized into `box` under `mask`.

    `box` lies inside the frame (frames whose face leaves it are never blended).
    """
    if generated.shape != (CROP_SIZE, CROP_SIZE, 3):
        raise ValueError(f"generated crop must be ({CROP_SIZE}, {CROP_SIZE}, 3), got {generated.shape}")
    face = cv2.resize(generated, (box.width, box.height), interpolation=cv2.INTER_LANCZOS4)
    peak = np.iinfo(frame.dtype).max
    if peak != 255:  # 8-bit faces on the deep frame's scale (255 -> 65535)
        face = face.astype(np.float32) * (peak / 255.0)
    out = frame.copy()
    region = out[box.y1 : box.y2, box.x1 : box.x2]
    alpha = mask[..., None]  # (h, w, 1)
    mixed = np.clip(np.rint(region * (1.0 - alpha) + face * alpha), 0, peak).astype(frame.dtype)
    region[...] = np.where(alpha > 0, mixed, region)
    return out
