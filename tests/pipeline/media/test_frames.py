"""Any order of frames (forward, backward, repeated) equals the same frames decoded in one pass."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from musedub.infra.sample_media import write_clip
from musedub.pipeline.dub.length_policy import source_frames
from musedub.pipeline.media.frames import BACKWARD_BLOCK, FrameReader
from musedub.pipeline.media.probe import probe_video


def test_cycled_order_matches_a_straight_decode(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", Fraction(25), 40)
    info = probe_video(str(clip))
    with FrameReader(info) as reader:
        straight = list(reader.frames(range(40)))
    order = source_frames(0, 40 * 2 + BACKWARD_BLOCK + 3, 40, "cycle")  # forward, backward, forward again
    with FrameReader(info) as reader:
        for index, frame in zip(order, reader.frames(order), strict=True):
            assert np.array_equal(frame, straight[index]), f"frame {index}"
    jumps = [30, 2, 2, 39, 0, 17]
    with FrameReader(info) as reader:
        assert all(np.array_equal(f, straight[i]) for i, f in zip(jumps, reader.frames(jumps), strict=True))
