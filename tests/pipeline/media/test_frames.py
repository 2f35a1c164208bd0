"""Any order of frames (forward, backward, repeated) equals the same frames decoded in one pass."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

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


@pytest.mark.parametrize(
    "x264_params",
    ["keyint=250:min-keyint=250:scenecut=0:bframes=3:b-pyramid=normal", "keyint=40:scenecut=0:open-gop=1:bframes=3"],
    ids=["long-gop", "open-gop"],
)
def test_a_segment_inside_a_long_or_open_gop_reads_the_frames_of_a_straight_decode(
    tmp_path: Path, x264_params: str
) -> None:
    """A master with one keyframe in 10 s, or open GOPs whose leading B-frames reference the GOP
    before: each segment, read by its own reader as a worker would, seeks to the keyframe at or
    before its start and gives exactly the frames one pass from the top gives (issue 15)."""
    clip = write_clip(tmp_path / "master.mp4", Fraction(25), 90, crf=30, x264_params=x264_params)
    info = probe_video(str(clip))
    with av.open(str(clip)) as container:
        packets = [(round(p.pts * p.time_base * 25), p.is_keyframe) for p in container.demux(video=0) if p.size]
    keyframes = [frame for frame, key in packets if key]
    assert keyframes == ([0] if "keyint=250" in x264_params else [0, 40, 80])
    if "open-gop" in x264_params:  # B-frames after the keyframe in decode order, shown before it
        after_40 = [frame for frame, _ in packets[[f for f, _ in packets].index(40) + 1 :]]
        assert min(after_40) < 40
    with FrameReader(info) as reader:
        straight = list(reader.frames(range(90)))
    for start, stop in ((37, 45), (40, 41), (79, 90), (61, 62)):
        with FrameReader(info) as reader:
            span = list(reader.frames(range(start, stop)))
        assert all(np.array_equal(a, b) for a, b in zip(span, straight[start:stop], strict=True)), (start, stop)


def test_readers_closed_mid_decode_give_their_memory_back(tmp_path: Path) -> None:
    """Each chunk of a film opens a reader and leaves it mid-stream. Closing the container under a
    paused decode kept ~9 MiB of FFmpeg buffers per 720p reader (173 MiB after 20); now a few MiB
    in all."""
    info = probe_video(str(write_clip(tmp_path / "720p.mp4", Fraction(25), 30, (1280, 720))))

    def rss_mib() -> int:
        return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024

    def open_and_leave() -> None:
        with FrameReader(info) as reader:
            next(reader.frames(range(30)))

    open_and_leave()
    before = rss_mib()
    for _ in range(20):
        open_and_leave()
    assert rss_mib() - before < 40
