"""A tagged master keeps its colour: its tags reach the output, and untouched pixels come back
through the same matrix and range they were read with (issue 15, fidelity to the source)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from musedub.infra.sample_media import face_frame
from musedub.pipeline.dub.blend_stage import BlendEncodeStage
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.face.crop_geometry import FaceStatus
from musedub.pipeline.media.encode import SegmentEncoder
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import index_bytes, info_from_bytes
from musedub.pipeline.media.probe import probe_video

BT709, FULL = 1, 2


def tagged_clip(path: Path, matrix: int, level: int) -> Path:
    """Five frames of the face, BT.709 primaries and transfer, the given matrix and range."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"crf": "10"}
        context = stream.codec_context
        context.color_primaries, context.color_trc, context.colorspace, context.color_range = (
            BT709,
            BT709,
            matrix,
            level,
        )
        for i in range(5):
            rgb = av.VideoFrame.from_ndarray(face_frame(i / 25), format="rgb24")
            frame = rgb.reformat(format="yuv420p", dst_colorspace=matrix, dst_color_range=level)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def planes(path: Path) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """(tags, stacked yuv420p planes (frames, 360, 320) as float)."""
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        tags = (context.color_primaries, context.color_trc, context.colorspace, context.color_range)
        return tags, np.stack([f.to_ndarray() for f in container.decode(video=0)]).astype(np.float64)


@pytest.mark.parametrize(("matrix", "level"), [(BT709, 1), (BT709, FULL)], ids=["bt709-limited", "bt709-full"])
def test_untouched_pixels_and_tags_survive_a_segment(tmp_path: Path, matrix: int, level: int) -> None:
    source = tagged_clip(tmp_path / "master.mp4", matrix, level)
    info = info_from_bytes(index_bytes(probe_video(str(source))))  # as a worker reads it
    assert info.colour == (BT709, BT709, matrix, level)
    out = tmp_path / "segment.mp4"
    with FrameReader(info) as reader, SegmentEncoder(out, 320, 240, Fraction(25), crf=4, colour=info.colour) as enc:
        for frame in reader.frames(range(5)):
            enc.write(frame)
    (tags_in, before), (tags_out, after) = planes(source), planes(out)
    assert tags_out == tags_in
    chroma = np.abs(before[:, 240:] - after[:, 240:]).mean()  # untagged (BT.601 back) measured 0.58 for BT.709
    luma = np.abs(before[:, :240] - after[:, :240]).mean()  # full range read as limited moves every level
    assert chroma < 0.5 and luma < 1.5, (chroma, luma)


def ten_bit_clip(path: Path) -> Path:
    """Five frames of the face in 10-bit BT.709 4:2:0, with detail finer than an 8-bit step (a ramp
    of a quarter level across each 4 pixels' width, as grain or a gradient in a graded master has)."""
    ramp = (np.arange(320) % 4 * 64).astype(np.uint16)[None, :, None]  # 0..192 of 65535: under 1/255
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p10le"
        stream.options = {"crf": "4"}
        context = stream.codec_context
        context.color_primaries, context.color_trc, context.colorspace, context.color_range = BT709, BT709, BT709, 1
        for i in range(5):
            deep = face_frame(i / 25).astype(np.uint16) * 257 + ramp  # (240, 320, 3)
            rgb = av.VideoFrame.from_ndarray(deep, format="rgb48le")
            frame = rgb.reformat(format="yuv420p10le", dst_colorspace=BT709, dst_color_range=1)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_10_bit_master_stays_10_bit_and_keeps_its_fine_detail(tmp_path: Path) -> None:
    source = ten_bit_clip(tmp_path / "master10.mp4")
    info = info_from_bytes(index_bytes(probe_video(str(source))))
    assert info.bit_depth == 10 and "(10-bit)" in info.describe()
    errors = {}
    for deep in (True, False):
        out = tmp_path / f"segment-{deep}.mp4"
        with (
            FrameReader(info, deep=deep) as reader,
            SegmentEncoder(out, 320, 240, Fraction(25), crf=4, colour=info.colour, ten_bit=deep) as encoder,
        ):
            for frame in reader.frames(range(5)):
                assert frame.dtype == (np.uint16 if deep else np.uint8)
                encoder.write(frame)
        with av.open(str(out)) as container:
            context = container.streams.video[0].codec_context
            assert (context.pix_fmt, context.profile) == (("yuv420p10le", "High 10") if deep else ("yuv420p", "High"))
        with FrameReader(probe_video(str(out)), deep=True) as back, FrameReader(info, deep=True) as original:
            pairs = zip(back.frames(range(5)), original.frames(range(5)), strict=True)
            errors[deep] = np.mean([np.abs(a.astype(np.int32) - b.astype(np.int32)).mean() for a, b in pairs])
    # a 10-bit level is 64 of 65535. Measured: 1.9 levels through the 10-bit path (4:2:0 and the encode), 12.5
    # through the 8-bit one, which rounds the ramp away and requantises every sample
    assert errors[True] / 64 < 2.5 and errors[True] < 0.3 * errors[False], errors


@pytest.mark.parametrize(("depth", "expected"), [("source", "yuv420p10le"), ("8", "yuv420p")])
def test_the_blend_stage_writes_a_10_bit_master_in_10_bits_unless_asked_for_8(
    tmp_path: Path, depth: str, expected: str
) -> None:
    source = ten_bit_clip(tmp_path / "master10.mp4")
    options = DubOptions(mask="landmarks", depth=depth)  # type: ignore[arg-type]
    stage = BlendEncodeStage(options, "unused", "cpu")
    stage.setup()
    out = tmp_path / "segment.mp4"
    stage(
        {
            "video": str(source),
            "still_fps": "25",
            "options": options.model_dump_json(),
            "source": np.arange(5),
            "status": np.full(5, FaceStatus.NO_FACE, np.uint8),  # passed through: the stage still writes them
            "boxes": np.zeros((5, 4), np.int32),
            "landmarks": np.full((5, 68, 2), np.nan, np.float32),
            "generated": np.zeros((0, 256, 256, 3), np.uint8),
            "segment_file": str(out),
        }
    )
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == expected
