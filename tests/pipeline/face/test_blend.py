"""Blending touches only the feathered lower face: every other pixel is the source's, exactly."""

from __future__ import annotations

import numpy as np

from musedub.infra.sample_media import face_frame
from musedub.pipeline.dub.blend_stage import BlendEncodeStage
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.face.blend import blend_face, feathered_lower_half, lower_face_mask
from musedub.pipeline.face.crop_geometry import Box, FaceStatus, crop_box, crop_face, face_status, paste_square


def test_only_the_lower_face_changes(dlib_detector) -> None:
    frame = face_frame(0.3)
    marks = dlib_detector.landmarks(frame, dlib_detector.detect(frame)[0])
    box = crop_box(marks, frame.shape[0])
    assert box is not None and face_status(marks, box, 320, 240, 64) == FaceStatus.OK
    mask = lower_face_mask(marks, box)
    assert mask.shape == (box.height, box.width) and mask.min() >= 0 and mask.max() == 1.0
    square = paste_square(box)
    rows = np.nonzero(mask.max(axis=1) > 0)[0] + box.y1
    assert rows.min() >= (square.y1 + square.y2) // 2  # lower half of the paste square only
    tip_x, tip_y = np.round(marks[30] - (box.x1, box.y1)).astype(int)
    assert mask[tip_y, tip_x] == 0  # the nose stays the source's
    generated = 255 - crop_face(frame, box)  # anything different from the source
    out = blend_face(frame, generated, box, mask)
    inside = np.zeros(frame.shape[:2], bool)
    inside[box.y1 : box.y2, box.x1 : box.x2] = mask > 0
    assert np.array_equal(out[~inside], frame[~inside])
    assert (out[inside] != frame[inside]).any(axis=-1).mean() > 0.9


def test_a_deep_frame_gets_the_face_on_its_own_scale_and_keeps_the_rest() -> None:
    frame = face_frame(0.3).astype(np.uint16) * 257 + 100  # 16-bit, with detail below an 8-bit step
    box = Box(100, 80, 196, 176)
    mask = np.zeros((box.height, box.width), np.float32)
    mask[48:] = 1.0  # the lower half, fully generated
    generated = np.full((256, 256, 3), 200, np.uint8)
    out = blend_face(frame, generated, box, mask)
    assert out.dtype == np.uint16 and np.all(out[box.y1 + 48 : box.y2, box.x1 : box.x2] == 200 * 257)
    untouched = np.ones(frame.shape[:2], bool)
    untouched[box.y1 + 48 : box.y2, box.x1 : box.x2] = False
    assert np.array_equal(out[untouched], frame[untouched])


def test_faces_leaving_the_frame_or_too_small_are_not_blended(dlib_detector) -> None:
    frame = face_frame(0.0)
    marks = dlib_detector.landmarks(frame, dlib_detector.detect(frame)[0])
    box = crop_box(marks, 240)
    assert face_status(marks, box, 320, 240, min_face=box.width + 1) == FaceStatus.TOO_SMALL
    shifted = marks + (330 - marks[:, 0].max(), 0)  # jaw past the right edge (width 320)
    assert face_status(shifted, crop_box(shifted, 240), 320, 240, 64) == FaceStatus.LEAVING_FRAME
    assert face_status(np.full((68, 2), np.nan), None, 320, 240, 64) == FaceStatus.NO_FACE


def test_parsing_mask_changes_only_the_lower_half_of_the_paste_square(dlib_detector, parsing_weights) -> None:
    frame = face_frame(0.3)
    marks = dlib_detector.landmarks(frame, dlib_detector.detect(frame)[0])
    box = crop_box(marks, frame.shape[0])
    stage = BlendEncodeStage(DubOptions(mask="parsing"), str(parsing_weights.root), "cpu")
    stage.setup()
    assert stage.mask_source == "parsing"
    mask = feathered_lower_half(stage._region(frame, marks, box), box)
    assert mask.max() > 0.99  # the tilted test parser marks skin, so there is a region
    square = paste_square(box)
    out = blend_face(frame, 255 - crop_face(frame, box), box, mask)
    changed = (out != frame).any(axis=-1)
    rows = np.nonzero(changed.any(axis=1))[0]
    assert rows.min() >= (square.y1 + square.y2) // 2 and rows.max() < box.y2
    cols = np.nonzero(changed.any(axis=0))[0]
    assert cols.min() >= box.x1 and cols.max() < box.x2
