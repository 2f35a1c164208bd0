"""A tagged master keeps its colour: its tags reach the output, and untouched pixels come back
through the same matrix and range they were read with (issue 15, fidelity to the source)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from musedub.infra.sample_media import face_frame
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
