"""Tracking the real astronaut face with dlib: found where it is, absent where it is not,
tracking reset at shot cuts, smoothing confined to one run of one shot."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from musedub.infra.sample_media import face_frame, faceless_frame, write_clip
from musedub.pipeline.face.shot_cuts import colour_signature, is_cut
from musedub.pipeline.face.track import FaceTrack, FaceTracker, smooth_landmarks
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import probe_video


def test_dlib_finds_the_face_and_its_landmarks(dlib_detector) -> None:
    frame = face_frame(0.0)
    boxes = dlib_detector.detect(frame)
    assert len(boxes) == 1
    marks = dlib_detector.landmarks(frame, boxes[0])
    assert marks.shape == (68, 2)
    # chin (8) below the nose tip (30) below the eyes (36..47), mouth (48..67) between nose and chin
    assert marks[8, 1] > marks[30, 1] > marks[36:48, 1].mean()
    assert marks[30, 1] < marks[48:68, 1].mean() < marks[8, 1]
    assert len(dlib_detector.detect(faceless_frame(0.0))) == 0


def test_track_through_a_faceless_second(tmp_path: Path, dlib_detector) -> None:
    clip = write_clip(tmp_path / "gap.mp4", Fraction(25), 60, faceless=range(20, 40))
    info = probe_video(str(clip))
    with FrameReader(info) as reader:
        track = FaceTracker(dlib_detector, detect_every=5).track(reader.frames(range(60)))
    assert np.array_equal(track.found, np.array([not 20 <= i < 40 for i in range(60)]))
    assert track.shot[0] == 0 and track.shot[20] > track.shot[19] and track.shot[40] > track.shot[39]
    jitter = np.abs(np.diff(track.landmarks[:20, 29], axis=0)).max()
    assert jitter < 6  # the face drifts < 1 px per frame; smoothed landmarks follow it closely


def test_shot_cut_signature() -> None:
    a, b = colour_signature(face_frame(0.0)), colour_signature(face_frame(0.04))
    assert is_cut(None, a) and not is_cut(a, b) and is_cut(a, colour_signature(faceless_frame(0.0)))


def test_smoothing_stays_inside_a_run_of_one_shot() -> None:
    marks = np.zeros((8, 68, 2), np.float32)
    marks[:, :, 0] = np.array([0, 10, 20, 30, np.nan, 100, 200, 300])[:, None]
    shot = np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int32)
    smoothed = smooth_landmarks(FaceTrack(marks, shot), radius=1)[:, 0, 0]
    expected = [5, 10, 20, 25, np.nan, 100, 250, 250]  # frame 5 is a run of one; 6-7 are a new shot
    np.testing.assert_allclose(smoothed, expected)
