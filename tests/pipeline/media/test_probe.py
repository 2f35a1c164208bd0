"""Probing real encoded clips: rates, rotation, variable frame rate, stills, and bad inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from musedub.infra.errors import InputError
from musedub.infra.sample_media import face_frame, write_clip
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import probe_video


@pytest.mark.parametrize(("fps", "frames"), [(Fraction(25), 30), (Fraction(30000, 1001), 31)])
def test_constant_rate_clip_maps_one_to_one(tmp_path: Path, fps: Fraction, frames: int) -> None:
    info = probe_video(str(write_clip(tmp_path / "c.mp4", fps, frames)))
    assert (info.width, info.height, info.fps, info.frame_count) == (320, 240, fps, frames)
    assert not info.variable_rate and not info.still and info.rotation == 0
    assert info.describe() == f"h264 video 320x240, {frames} frames -> {frames} at {fps} fps"


def test_rotation_metadata_gives_upright_frames(tmp_path: Path) -> None:
    info = probe_video(str(write_clip(tmp_path / "r.mp4", Fraction(25), 3, rotation=90)))
    assert (info.width, info.height, info.rotation) == (320, 240, 90)
    with FrameReader(info) as reader:
        first = next(reader.frames([0]))
    assert first.shape == (240, 320, 3)
    assert np.abs(first.astype(int) - face_frame(0.0).astype(int)).mean() < 4  # codec noise only


def test_variable_frame_rate_is_resampled_by_timestamp(tmp_path: Path) -> None:
    """Frames 1 or 2 ticks of 1/50 s apart: output at the stream's average rate spans the duration."""
    path = tmp_path / "vfr.mp4"
    gaps = [1, 1, 2, 1, 2, 1, 1, 2, 1, 2]  # in 1/50 s
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=50)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 50)
        pts = 0
        for i, gap in enumerate(gaps):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = pts
            pts += gap
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    info = probe_video(str(path))
    assert info.variable_rate
    duration = Fraction(12 + 1, 50)  # gaps sum to 12 ticks; the last frame lasts the median gap
    assert info.frame_count == round(duration * info.fps)
    assert np.all(np.diff(info.source_index) >= 0) and info.source_index[0] == 0 and info.source_index[-1] == 9
    assert "variable frame rate" in info.describe()
    with FrameReader(info) as reader:
        shades = [int(f[0, 0, 0]) for f in reader.frames(range(info.frame_count))]
    assert np.array_equal(np.round(np.array(shades) / 20), info.source_index)  # each shows its source frame


def test_still_image_is_one_frame_at_still_fps(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), astronaut()[..., ::-1])
    info = probe_video(str(path), still_fps=Fraction(30))
    assert (info.still, info.frame_count, info.fps, info.width, info.height) == (True, 1, 30, 512, 512)
    with FrameReader(info) as reader:
        frames = list(reader.frames([0, 0, 0]))
    assert len(frames) == 3 and np.array_equal(frames[0], astronaut())


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("random.mp4", np.random.default_rng(0).bytes(5000), "not a readable media file"),
        ("empty.mp4", b"", "not a readable media file"),
    ],
)
def test_garbage_is_one_clear_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        probe_video(str(path))


def test_truncated_mp4_is_one_clear_error(tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "whole.mp4", Fraction(25), 25).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="cut.mp4"):
        info = probe_video(str(cut))
        with FrameReader(info) as reader:
            list(reader.frames(range(info.frame_count)))


def test_audio_file_as_video_names_the_fix(speech_path: Path) -> None:
    with pytest.raises(InputError, match="has no video stream"):
        probe_video(str(speech_path))


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        probe_video(str(tmp_path / "nope.mp4"))
