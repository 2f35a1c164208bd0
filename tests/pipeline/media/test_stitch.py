"""Segments joined without re-encoding keep NTSC rates exactly (issue 15: 23.976 and 29.97, not
rounded to 24 and 30), and a 10-bit source's segments stay 10-bit through the join."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from musedub.infra.sample_media import face_frame
from musedub.pipeline.media.encode import SegmentEncoder
from musedub.pipeline.media.stitch import stitch


@pytest.mark.parametrize(
    ("fps", "ten_bit"), [(Fraction(24000, 1001), False), (Fraction(30000, 1001), True)], ids=["23.976", "29.97-10bit"]
)
def test_stitched_segments_keep_the_exact_rate_and_depth(
    tmp_path: Path, short_speech: Path, fps: Fraction, ten_bit: bool
) -> None:
    segments = []
    for s in range(2):
        path = tmp_path / f"{s}.mp4"
        with SegmentEncoder(path, 320, 240, fps, crf=23, ten_bit=ten_bit) as encoder:
            for i in range(12):
                frame = face_frame((12 * s + i) / float(fps))
                encoder.write(frame.astype(np.uint16) * 257 if ten_bit else frame)
        segments.append(path)
    out = tmp_path / "joined.mp4"
    assert stitch(segments, fps, str(short_speech), out) == 24
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert Fraction(video.average_rate) == fps and video.codec_context.pix_fmt == (
            "yuv420p10le" if ten_bit else "yuv420p"
        )
        assert float(container.duration / av.time_base) == pytest.approx(24 / float(fps), abs=0.05)
        assert sum(1 for _ in container.decode(video=0)) == 24
