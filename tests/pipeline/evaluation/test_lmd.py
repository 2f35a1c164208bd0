"""LMD's arithmetic on hand-built landmarks: distances in the source box's units, x 256 crop pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from musedub.pipeline.evaluation.lmd import LipDistance, pooled_lmd
from musedub.pipeline.face.crop_geometry import Box

BOX = Box(100, 50, 300, 150)  # 200 px wide, 100 px high: a shift is a different fraction on each axis


def face(seed: int) -> np.ndarray:
    """68 landmarks (68, 2) in pixels, inside BOX."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(BOX.x1, BOX.x2, 68), rng.uniform(BOX.y1, BOX.y2, 68)], axis=1)


def moved_mouth(landmarks: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The landmarks with only the mouth (48..67) moved by (dx, dy) px."""
    moved = landmarks.copy()
    moved[48:68] += (dx, dy)
    return moved


def test_identical_mouths_are_zero_even_when_the_rest_of_the_face_moved() -> None:
    lips = LipDistance()
    lips.add_source(0, face(0), BOX)
    elsewhere = face(0)
    elsewhere[:48] = face(1)[:48]  # jaw, brows, eyes, nose differ; the mouth does not
    lips.add_dub(0, elsewhere)
    assert (lips.frames, lips.value) == (1, pytest.approx(0.0, abs=1e-4))  # the source's mouth is kept in float32


def test_a_mouth_moved_by_a_fraction_of_the_box_is_that_fraction_of_the_crop() -> None:
    """3 % of the box's width and 4 % of its height: 5 % of the 256 px crop, every point; frames average."""
    lips = LipDistance()
    lips.add_source(7, face(2), BOX)
    lips.add_source(8, face(3), BOX)
    lips.add_dub(7, moved_mouth(face(2), 0.03 * BOX.width, 0.04 * BOX.height))  # 0.05 x 256 = 12.8 px
    lips.add_dub(8, moved_mouth(face(3), 0.0, -0.1 * BOX.height))  # 0.1 x 256 = 25.6 px
    assert lips.frames == 2
    assert lips.value == pytest.approx((12.8 + 25.6) / 2, rel=1e-6)


def test_the_source_box_is_the_unit_for_both_sides() -> None:
    """A dub frame is measured in the box of the source frame it was made from, not its own."""
    lips = LipDistance()
    lips.add_source(0, face(4), Box(0, 0, 64, 32))  # 64 x 32 px: 6.4 px across is a tenth of the box
    lips.add_dub(0, moved_mouth(face(4), 6.4, 0.0))
    assert lips.value == pytest.approx(0.1 * 256, rel=1e-6)


def test_frames_without_a_source_face_are_skipped_and_none_is_nan() -> None:
    lips = LipDistance()
    lips.add_dub(0, face(5))  # no source frame 0: nothing to compare
    assert lips.frames == 0 and math.isnan(lips.value)
    lips.add_source(1, face(5), BOX)
    lips.add_dub(0, face(5))
    lips.add_dub(1, moved_mouth(face(5), 0.5 * BOX.width, 0.0))  # the one compared frame: half the box
    assert (lips.frames, lips.value) == (1, pytest.approx(128.0, rel=1e-6))


def test_pooled_lmd_weighs_jobs_by_their_compared_frames() -> None:
    assert pooled_lmd([(10.0, 1), (float("nan"), 0), (20.0, 3)]) == (17.5, 4)  # not (10 + 20) / 2
    assert pooled_lmd([(float("nan"), 0)]) == (None, 0)
