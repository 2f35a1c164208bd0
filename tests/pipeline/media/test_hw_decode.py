"""decoder="cuda" gives the CPU decode's frames: through NVDEC where a device opens, else through
the software decoder after one logged line per process."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from musedub.pipeline.media import hw_decode
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import probe_video

CLIP = Path(__file__).parents[2] / "data" / "astronaut_25fps.mp4"


def test_cuda_decoder_gives_the_cpu_frames_and_logs_a_missing_device_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hw_decode, "_unavailable", None)
    monkeypatch.setattr(hw_decode, "_logged", set())
    info = probe_video(str(CLIP))
    order = [*range(0, 75, 2), 40, 3]  # a forward run, then seeks back
    with FrameReader(info) as reader:
        expected = list(reader.frames(order))
    with caplog.at_level(logging.INFO, logger=hw_decode.__name__):
        for _ in range(2):
            with FrameReader(info, decoder="cuda") as reader:
                got = list(reader.frames(order))
                hardware = reader.hardware
            assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    fallbacks = [r.getMessage() for r in caplog.records if "NVDEC unavailable" in r.getMessage()]
    if hw_decode.nvdec_unavailable() is None:  # a machine whose GPU decodes
        assert hardware and not fallbacks
    else:
        assert not hardware and len(fallbacks) == 1, fallbacks


def test_a_semi_planar_surface_converts_to_the_rgb_of_the_planar_one() -> None:
    """nv12 (NVDEC's download) is unpacked to yuv420p before RGB: swscale's nv12 -> rgb24 differs."""
    with av.open(str(CLIP)) as container:
        frame = next(container.decode(video=0))
    surface = frame.reformat(format="nv12")
    rgb = frame.reformat(format="rgb24", src_color_range=frame.color_range).to_ndarray()  # (240, 320, 3)
    unpacked = hw_decode.planar(surface)
    assert unpacked.format.name == "yuv420p"
    assert np.array_equal(unpacked.reformat(format="rgb24", src_color_range=frame.color_range).to_ndarray(), rgb)
