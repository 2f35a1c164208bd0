"""Decoded, upright RGB frames of a probed video for any sequence of constant-rate frame indices.

Only a handful of full frames is ever held: forward runs stream straight from the decoder, and
backward runs (the forward-backward cycle) are decoded forward in blocks of `BACKWARD_BLOCK`
frames and handed out reversed.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence

import av
import numpy as np

from musedub.infra.errors import InputError
from musedub.infra.storage import open_input
from musedub.pipeline.media.hw_decode import Decoder, open_for_decode, planar
from musedub.pipeline.media.probe import VideoInfo

BACKWARD_BLOCK = 16
SEEK_THRESHOLD = 48  # decoding this many frames forward is cheaper than a seek to a keyframe


class FrameReader:
    """Reads frames of one video; use as a context manager. Frames are uint8 RGB, or with `deep`
    uint16 RGB at full 16-bit scale (for sources of more than 8 bits kept to the output).
    `decoder="cuda"` decodes with NVDEC where a device opens (`hardware`), else on the CPU."""

    def __init__(self, info: VideoInfo, what: str = "video", deep: bool = False, decoder: Decoder = "cpu") -> None:
        self.info = info
        self.what = what
        self._format = "rgb48le" if deep else "rgb24"
        self._opener = open_input(info.uri, what, info.identity or None)
        source = self._opener.__enter__()
        self._container, self.hardware = open_for_decode(source, decoder)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._index_of = {int(p): i for i, p in enumerate(info.pts)}
        self._decoder: Generator[tuple[int, av.VideoFrame], None, None] | None = None
        self._position = -1  # source index of the last frame the decoder produced

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop_decoder()
        self._container.close()
        self._opener.__exit__(None, None, None)

    def _drop_decoder(self) -> None:
        """Close the paused decode generator before its container (or a new one) takes over:
        a container closed under a suspended decode kept ~20 MiB of FFmpeg buffers per reader."""
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    def frames(self, indices: Sequence[int] | np.ndarray) -> Iterator[np.ndarray]:
        """RGB (H, W, 3) uint8 frames for constant-rate frame `indices`, in that order."""
        wanted = self.info.source_index[np.asarray(indices, dtype=np.int64)]  # (n,) source frames
        i = 0
        while i < len(wanted):
            j = i + 1
            while j < len(wanted) and wanted[j] >= wanted[j - 1]:
                j += 1
            if j - i >= 2 or j == len(wanted):
                yield from self._forward(wanted[i:j])
            else:
                j = i + 1
                while j < len(wanted) and j - i < BACKWARD_BLOCK and wanted[j] <= wanted[j - 1]:
                    j += 1
                block = self._collect(wanted[i:j])
                yield from (block[int(s)] for s in wanted[i:j])
            i = j

    def _forward(self, sources: np.ndarray) -> Iterator[np.ndarray]:
        """Non-decreasing source indices, streamed; repeats yield the same frame again."""
        current: tuple[int, np.ndarray] | None = None
        for s in sources:
            if current is None or current[0] != s:
                current = (int(s), self._frame_at(int(s)))
            yield current[1]

    def _collect(self, sources: np.ndarray) -> dict[int, np.ndarray]:
        """The distinct frames of a short block by source index, decoded in order."""
        return {s: self._frame_at(s) for s in sorted({int(s) for s in sources})}

    def _frame_at(self, source: int) -> np.ndarray:
        """Decode up to source frame `source`, seeking back to a keyframe only when needed."""
        if self._decoder is None or source <= self._position or source - self._position > SEEK_THRESHOLD:
            self._seek(source)
        assert self._decoder is not None
        for index, frame in self._decoder:
            self._position = index
            if index == source:
                return self._upright(frame)
            if index > source:
                break
        raise InputError(
            f"{self.what} {self.info.uri} stops decoding before frame {source} of {self.info.source_frames}: "
            "the file is truncated or corrupt, re-export it"
        )

    def _seek(self, source: int) -> None:
        if self._decoder is not None or source > 0:
            self._drop_decoder()
            self._container.seek(self._seek_target(source), stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._decode()
        self._position = -1

    def _seek_target(self, source: int) -> int:
        """A timestamp that lands the demuxer on the last keyframe *shown* at or before `source`.

        Seeking straight to the frame's pts can land on the next keyframe: with B-frames a
        keyframe is decoded before the frames shown just ahead of it, and some demuxers index
        decode times (MP4) while others index presentation times (Matroska); in an open GOP the
        frames shown ahead of a keyframe also need the GOP before. The keyframe's smaller stamp
        lands on it (or earlier, which only decodes more) under either index."""
        wanted = int(self.info.pts[source])
        keys = self.info.keyframes
        shown_before = keys[keys[:, 0] <= wanted] if len(keys) else keys
        if not len(shown_before):
            return wanted
        pts, dts, _ = shown_before[np.argmax(shown_before[:, 0])]
        return int(min(pts, dts))

    def _decode(self) -> Generator[tuple[int, av.VideoFrame], None, None]:
        try:
            for frame in self._container.decode(self._stream):
                index = self._index_of.get(frame.pts if frame.pts is not None else -1)
                if index is not None:
                    yield index, frame
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{self.what} {self.info.uri} is corrupt ({exc.__class__.__name__}): re-export the video"
            ) from None

    def _upright(self, frame: av.VideoFrame) -> np.ndarray:
        # the frame's own matrix and range (swscale would assume limited range), so the encoder,
        # given the same, gives untouched pixels back
        if self.hardware:
            frame = planar(frame)
        rgb = frame.reformat(format=self._format, src_color_range=frame.color_range).to_ndarray()  # (h, w, 3)
        turns = round(self.info.rotation / 90) % 4
        # packed rows: native code (dlib, x264 via from_ndarray) reads the buffer as W*3 bytes a row
        return np.ascontiguousarray(np.rot90(rgb, k=turns) if turns else rgb)
