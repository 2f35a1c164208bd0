"""Output length and source frame order for each length policy."""

from __future__ import annotations

import numpy as np
import pytest

from musedub.pipeline.dub.length_policy import output_frame_count, source_frames


def test_cycle_runs_forward_then_backward() -> None:
    assert source_frames(0, 10, 4, "cycle").tolist() == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1]


def test_loop_wraps() -> None:
    assert source_frames(0, 10, 4, "loop").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


def test_segments_agree_with_the_whole() -> None:
    whole = source_frames(0, 1000, 37, "cycle")
    np.testing.assert_array_equal(source_frames(400, 450, 37, "cycle"), whole[400:450])


def test_single_frame_video_repeats_its_frame() -> None:
    assert source_frames(0, 5, 1, "cycle").tolist() == [0] * 5


def test_counts_and_trim() -> None:
    assert output_frame_count(300, 100, "cycle") == 300
    assert output_frame_count(300, 100, "loop") == 300
    assert output_frame_count(300, 100, "trim-audio") == 100
    assert output_frame_count(50, 100, "cycle") == 50  # shorter audio trims the video
    assert source_frames(0, 100, 100, "trim-audio").tolist() == list(range(100))
    with pytest.raises(ValueError, match="does not exist"):
        source_frames(0, 101, 100, "trim-audio")
    with pytest.raises(ValueError, match="at least one frame"):
        source_frames(0, 1, 0, "loop")
