"""The reference's 'jaw' face-parsing mask (v1.5): skin grown down past the jaw, thinned on the
cheeks, with mouth and lips added and the nose left out, all on the parser's 512x512 grid.
"""

from __future__ import annotations

import cv2
import numpy as np

from musedub.models.face_parsing import LOWER_LIP, MOUTH, NOSE, PARSE_SIZE, SKIN, UPPER_LIP
from musedub.pipeline.face.crop_geometry import Box

CONE_ROWS = 21  # rows of the widening cone; its lower half carries the cone, then a straight tail
TAIL_ROWS = 12
CHEEK_KERNEL = (35, 3)  # flat ellipse (width, height) that thins the cheeks
CHEEK_ERODE_ITERATIONS = 2
CHEEK_WIDTH = 90  # half-width of the central band (512 grid) where the cheeks are not thinned


def cone_kernel() -> np.ndarray:
    """uint8 (33, 33): rows 10..20 widen 1, 3, ..., 21 around the centre column, rows 21..32 stay 21 wide."""
    size = CONE_ROWS + TAIL_ROWS
    rows, cols = np.mgrid[:size, :size]
    start = CONE_ROWS // 2
    half_width = np.where(rows < start, -1, np.minimum(rows - start, start))
    return (np.abs(cols - size // 2) <= half_width).astype(np.uint8)


def jaw_region(parsing: np.ndarray, cheek_width: int = CHEEK_WIDTH) -> np.ndarray:
    """uint8 (512, 512) class ids -> uint8 (512, 512) mask, 255 where the generated face goes."""
    skin = np.where(parsing == SKIN, 255, 0).astype(np.uint8)
    grown = cv2.dilate(skin, cone_kernel(), iterations=1)
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, CHEEK_KERNEL)
    thinned = cv2.erode(grown, ellipse, iterations=CHEEK_ERODE_ITERATIONS)
    cols = np.arange(PARSE_SIZE)
    cheeks = (cols <= PARSE_SIZE // 2 - cheek_width) | (cols >= PARSE_SIZE // 2 + cheek_width)  # (512,) columns
    region = np.where(cheeks[None, :], thinned, grown) == 255
    region = (region & (parsing != NOSE)) | np.isin(parsing, (MOUTH, UPPER_LIP, LOWER_LIP))
    return np.where(region, 255, 0).astype(np.uint8)


def parser_input(frame: np.ndarray, square: Box) -> np.ndarray:
    """RGB frame -> uint8 (512, 512, 3): the paste square, black where it leaves the frame, resized."""
    height, width = frame.shape[:2]
    canvas = np.zeros((square.height, square.width, 3), np.uint8)
    x1, y1 = max(square.x1, 0), max(square.y1, 0)
    x2, y2 = min(square.x2, width), min(square.y2, height)
    canvas[y1 - square.y1 : y2 - square.y1, x1 - square.x1 : x2 - square.x1] = frame[y1:y2, x1:x2]
    return cv2.resize(canvas, (PARSE_SIZE, PARSE_SIZE), interpolation=cv2.INTER_LINEAR)


def region_in_box(region: np.ndarray, box: Box, square: Box) -> np.ndarray:
    """The 512 mask of `square` scaled back to it, cut to `box`: uint8 (box.height, box.width)."""
    full = cv2.resize(region, (square.width, square.height), interpolation=cv2.INTER_LINEAR)
    return full[box.y1 - square.y1 : box.y2 - square.y1, box.x1 - square.x1 : box.x2 - square.x1]
