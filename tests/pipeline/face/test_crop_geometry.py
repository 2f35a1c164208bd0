"""Crop box, crop, paste square and blur kernel against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from musedub.pipeline.face.crop_geometry import Box, blur_kernel, crop_box, crop_face, paste_square


def landmarks(nose_y: float, chin_y: float, x_min: float = 100, x_max: float = 200) -> np.ndarray:
    """68 points spread over [x_min, x_max] x [nose_y, chin_y], landmark 29 at the nose."""
    points = np.zeros((68, 2), np.float32)
    points[:, 0] = np.linspace(x_min, x_max, 68)
    points[:, 1] = np.linspace(nose_y, chin_y, 68)
    points[29] = (150, nose_y)
    return points


def test_v15_box_mirrors_nose_to_chin_and_adds_margin() -> None:
    # nose 150, chin 230: d = 80, top = 70; bottom 230 + 10.
    assert crop_box(landmarks(150, 230), frame_height=480) == Box(100, 70, 200, 240)
    assert crop_box(landmarks(150, 230), frame_height=235) == Box(100, 70, 200, 235)  # clipped to the frame
    assert crop_box(landmarks(40, 230), frame_height=480, extra_margin=0) == Box(100, 0, 200, 230)  # top clipped at 0


def test_v10_box_shifts_the_nose_point() -> None:
    # nose 150 + shift 10 = 160, d = 70, top = 90; no bottom margin in v1.0.
    assert crop_box(landmarks(150, 230), frame_height=480, version="v1.0", bbox_shift=10) == Box(100, 90, 200, 230)
    assert crop_box(landmarks(150, 230), frame_height=480, version="v1.0", bbox_shift=-10) == Box(100, 50, 200, 230)


def test_degenerate_face_gives_no_box() -> None:
    flat = landmarks(150, 230, x_min=120, x_max=120)
    flat[29] = (120, 150)
    assert crop_box(flat, frame_height=480) is None
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        crop_box(np.zeros((5, 2)), frame_height=480)


def test_crop_face_is_256_square_rgb() -> None:
    image = astronaut()
    crop = crop_face(image, Box(170, 40, 330, 220))
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    assert abs(int(crop.mean()) - int(image[40:220, 170:330].mean())) <= 3


def test_paste_square_and_kernel() -> None:
    # w 100, h 170 -> half = int(170 // 2 * 1.5) = 127; centre (150, 155).
    assert paste_square(Box(100, 70, 200, 240)) == Box(23, 28, 277, 282)
    assert blur_kernel(254) == 13  # int(12.7 // 2 * 2) + 1
    assert blur_kernel(20) == 1
    assert all(blur_kernel(w) % 2 == 1 for w in range(1, 2000, 37))
