"""H.264 segment files: libx264, yuv420p (or yuv420p10le, High 10, for a source of more than 8
bits), constant rate, a closed GOP starting every segment.

Segments written with the same settings share their parameter sets, so `stitch` can join them
without re-encoding. The same frames always give the same bits, on any machine: x264 runs a fixed
two slice threads (its automatic count follows the host's cores), and MB-tree rate control is off
by default because in this x264 build (core 165) it makes different bits from run to run of the
same input (measured: 3 outcomes in 8 encodes of one segment), which would make a resumed batch
differ from an uninterrupted one.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from musedub.pipeline.media.probe import UNTAGGED

# Visually lossless with margin: re-encoding decoded 4:2:0 through RGB costs ~45 dB by itself
# (measured), and CRF 16 keeps untouched pixels above 40 dB PSNR on detailed content.
DEFAULT_CRF = 16
DEFAULT_PRESET = "medium"
X264_THREADS = 2


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides: odd ones grow by one pixel, filled by repeating the edge."""
    return width + width % 2, height + height % 2


class SegmentEncoder:
    """Writes RGB frames of one segment to an mp4 at `fps`; use as a context manager. With
    `ten_bit` it takes uint16 RGB frames (full 16-bit scale) and encodes 10-bit 4:2:0."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: Fraction,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        mbtree: bool = False,
        colour: tuple[int, int, int, int] = UNTAGGED,
        ten_bit: bool = False,
    ) -> None:
        self.width, self.height = even_size(width, height)
        self._rgb, self._yuv = ("rgb48le", "yuv420p10le") if ten_bit else ("rgb24", "yuv420p")
        self._container = av.open(str(path), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = self._yuv
        self._stream.codec_context.time_base = 1 / fps
        # open-gop off keeps each segment independently decodable; fixed params keep SPS/PPS equal.
        params = f"open-gop=0:threads={X264_THREADS}:sliced-threads=1:mbtree={int(mbtree)}"
        self._stream.options = {"crf": str(crf), "preset": preset, "x264-params": params}
        self.colour = colour
        if colour != UNTAGGED:  # the source's tags, so players show the colours it showed
            context = self._stream.codec_context
            context.color_primaries, context.color_trc, context.colorspace, context.color_range = colour
        self.frames = 0

    def __enter__(self) -> SegmentEncoder:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._container.mux(self._stream.encode(None))
        self._container.close()

    def write(self, rgb: np.ndarray) -> None:
        pad_y, pad_x = self.height - rgb.shape[0], self.width - rgb.shape[1]
        if pad_y or pad_x:
            rgb = np.pad(rgb, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(rgb, format=self._rgb)
        if self.colour != UNTAGGED:  # back through the matrix and range the frames were read with
            primaries, trc, matrix, level = self.colour
            frame = frame.reformat(
                format=self._yuv,
                dst_colorspace=matrix,
                dst_color_range=level,
                dst_color_trc=trc,
                dst_color_primaries=primaries,
            )
        frame.pts = self.frames
        self._container.mux(self._stream.encode(frame))
        self.frames += 1
