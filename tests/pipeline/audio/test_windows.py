"""Whisper-frame indices per video frame, checked against values computed by hand."""

from __future__ import annotations

from fractions import Fraction

import pytest

from musedub.infra.errors import InputError
from musedub.pipeline.audio.windows import prompt_start, video_frame_count, whisper_frame_count, windows_for_frames
from musedub.pipeline.media.frame_rate import parse_fps

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("fps", "frame", "start"),
    [
        (Fraction(25), 0, -4),  # floor(2 * 0) - 4
        (Fraction(25), 1, -2),
        (Fraction(25), 10, 16),
        (Fraction(25), 749, 1494),  # reads 1494..1503: across the 30 s window boundary
        (Fraction(2997, 100), 1, -3),  # floor(1.668) - 4
        (Fraction(2997, 100), 3, 1),  # floor(5.005) - 4
        (Fraction(2997, 100), 100, 162),  # floor(166.83) - 4; the reference's int(29.97)=29 gives 168
        (Fraction(2997, 100), 899, 1495),  # floor(1499.83) - 4
        (NTSC, 100, 162),  # floor(166.83) - 4
        (NTSC, 1199, 1996),  # floor(2000.33) - 4
        (Fraction(30), 3, 1),  # floor(5.0) - 4
    ],
)
def test_prompt_start(fps: Fraction, frame: int, start: int) -> None:
    assert prompt_start(frame, fps) == start


def test_counts() -> None:
    assert whisper_frame_count(137_702) == 430  # 8.606 s * 50
    assert video_frame_count(137_702, Fraction(25)) == 215  # floor(215.16)
    assert video_frame_count(137_702, NTSC) == 257  # floor(257.93)
    assert video_frame_count(16_000, Fraction(25)) == 25
    assert video_frame_count(639, Fraction(25)) == 0  # under one frame (640 samples)


def test_windows_for_frames() -> None:
    samples = 35 * 16_000  # 1750 whisper frames: windows 0 and 1
    assert windows_for_frames(0, 750, Fraction(25), samples) == range(0, 2)
    assert windows_for_frames(0, 746, Fraction(25), samples) == range(0, 1)  # frame 745 ends at 1495
    assert windows_for_frames(747, 748, Fraction(25), samples) == range(0, 1)  # reads 1490..1499
    assert windows_for_frames(748, 749, Fraction(25), samples) == range(0, 2)  # reads 1492..1501
    assert windows_for_frames(760, 800, Fraction(25), samples) == range(1, 2)
    assert windows_for_frames(0, 1, Fraction(25), samples) == range(0, 1)


@pytest.mark.parametrize(
    ("text", "value"), [("25", Fraction(25)), ("29.97", Fraction(2997, 100)), ("30000/1001", NTSC)]
)
def test_parse_fps(text: str, value: Fraction) -> None:
    assert parse_fps(text) == value


@pytest.mark.parametrize("text", ["abc", "0", "-25", "1/0", "5000"])
def test_parse_fps_rejects(text: str) -> None:
    with pytest.raises(InputError, match="frame rate"):
        parse_fps(text)
