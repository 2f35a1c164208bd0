"""What a video input is: upright size, constant output rate, frame count, and the source frame
behind each constant-rate frame.

Probing demuxes every packet (no decoding) to learn the presentation times, so variable frame
rate input can be resampled to its average rate by timestamp, and decodes the first frame to
learn the rotation and prove the stream decodes. A still image is a 1-frame video at `still_fps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from musedub.infra.errors import InputError
from musedub.infra.storage import identity
from musedub.pipeline.media.frame_rate import parse_fps
from musedub.pipeline.media.limits import MediaLimits
from musedub.pipeline.media.open import open_media

UNTAGGED = (2, 2, 2, 0)  # FFmpeg's "unspecified" primaries, transfer, matrix, and range
IMAGE_FORMATS = frozenset({"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"})
DEFAULT_STILL_FPS = Fraction(25)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"})  # in folders


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """A probed video. `source_index[i]` is the decoded frame (presentation order) that feeds
    constant-rate frame i; `pts` holds the sorted presentation timestamps of decoded frames."""

    uri: str
    width: int
    height: int
    fps: Fraction
    rotation: int
    codec: str
    still: bool
    pts: np.ndarray = field(repr=False)
    source_index: np.ndarray = field(repr=False)
    identity: str = ""  # the content identity probed (infra.storage.identity); every reader checks it
    # (K, 3) int64 per keyframe packet in file order: pts, dts, byte offset (-1 where unknown)
    keyframes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64), repr=False)
    colour: tuple[int, int, int, int] = UNTAGGED  # primaries, transfer, matrix, range of its frames
    bit_depth: int = 8  # bits per sample of its pixel format (8, 10, 12, 16)

    @property
    def frame_count(self) -> int:
        return len(self.source_index)

    @property
    def source_frames(self) -> int:
        return len(self.pts)

    @property
    def variable_rate(self) -> bool:
        return not np.array_equal(self.source_index, np.arange(self.source_frames))

    def describe(self) -> str:
        """One line for the job report: what was found and what will be done to it."""
        kind = "still image" if self.still else f"{self.codec} video"
        text = f"{kind} {self.width}x{self.height}, {self.source_frames} frames -> {self.frame_count} at {self.fps} fps"
        if self.variable_rate:
            text += " (variable frame rate resampled to its average rate)"
        if self.bit_depth > 8:
            text += f" ({self.bit_depth}-bit)"
        if self.rotation:
            text += f" (rotated {self.rotation} degrees counterclockwise as its metadata asks)"
        return text


def probe_video(uri: str, still_fps: Fraction = DEFAULT_STILL_FPS, what: str = "video") -> VideoInfo:
    """Probe `uri`; raise InputError naming it when it is not a decodable video or image."""
    found = identity(uri, what)
    with open_media(uri, what, "an mp4, mov, mkv, png, ...", found) as container:
        if not container.streams.video:
            raise InputError(f"{what} {uri} has no video stream: give a video or an image of the speaker")
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one frame is decoded: a pool of decoder threads per probe only costs
        still = container.format.name in IMAGE_FORMATS
        limits = MediaLimits.from_env()
        limits.check_size(what, uri, stream.codec_context.width, stream.codec_context.height)  # headers only
        limits.check_seconds(what, uri, header_seconds(container, stream))
        limits.check_frames(what, uri, stream.frames)
        stamps: list[int | None] = []
        keys: list[tuple[int, int, int]] = []
        first: av.VideoFrame | None = None
        try:
            for packet in container.demux(stream):
                if packet.size:
                    stamps.append(packet.pts if packet.pts is not None else packet.dts)
                    if packet.is_keyframe and stamps[-1] is not None:
                        decode_at = packet.dts if packet.dts is not None else stamps[-1]
                        keys.append((stamps[-1], decode_at, packet.pos if packet.pos is not None else -1))
                    if len(stamps) > limits.max_frames:  # headers may not say; packets do
                        limits.check_frames(what, uri, len(stamps))
                if first is None:  # decode only until the first frame comes out
                    first = _first_frame(stream, packet)
        except av.error.FFmpegError as exc:
            raise InputError(f"{what} {uri} is corrupt ({exc.__class__.__name__}): re-export the video") from None
        if first is None or not stamps:
            raise InputError(f"{what} {uri} holds no decodable frame: re-export the video")
        rotation = int(first.rotation or 0)
        width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        pts = np.sort(np.array([s if s is not None else i for i, s in enumerate(stamps)], dtype=np.int64))
        fps = still_fps if still else _average_rate(stream, pts)
        return VideoInfo(
            uri=uri,
            width=width,
            height=height,
            fps=fps,
            rotation=rotation,
            codec=stream.codec_context.name,
            still=still,
            pts=pts,
            source_index=_constant_rate_index(pts, stream.time_base, fps),
            identity=found,
            keyframes=np.array(keys, np.int64).reshape(-1, 3),
            colour=(first.color_primaries, first.color_trc, first.colorspace, first.color_range),
            bit_depth=max(c.bits for c in first.format.components),
        )


def _first_frame(stream: av.video.stream.VideoStream, packet: av.Packet) -> av.VideoFrame | None:
    """The frame `packet` decodes to, if one comes out. A keyframe the decoder holds back for
    reordering (B-frames may follow) is drained out instead of decoding the frames behind it too
    (for a 2 s 1080p clip that was about a third of its plan's CPU); the decoder is then reset, so
    after a keyframe that gave nothing the next packets still decode."""
    frame = next(iter(packet.decode()), None)
    if frame is None and packet.size and packet.is_keyframe:
        frame = next(iter(stream.codec_context.decode(None)), None)
        stream.codec_context.flush_buffers()
    return frame


def header_seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    """The duration the headers declare (0 when they do not)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _average_rate(stream: av.video.stream.VideoStream, pts: np.ndarray) -> Fraction:
    """The stream's average rate, else the rate its timestamps imply, else 25."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate <= 1000:
            return parse_fps(Fraction(rate).limit_denominator(1001))
    if len(pts) > 1 and stream.time_base:
        span = Fraction(int(pts[-1] - pts[0])) * stream.time_base
        return parse_fps((Fraction(len(pts) - 1) / span).limit_denominator(1001))
    return DEFAULT_STILL_FPS


def _constant_rate_index(pts: np.ndarray, time_base: Fraction | None, fps: Fraction) -> np.ndarray:
    """Constant-rate frame i shows the last source frame presented by i/fps (+ half a frame).

    Evenly spaced timestamps (within a tick or 2% of rounding jitter) map one to one. Otherwise
    the output spans the source's duration (last frame lasting the median gap) at `fps`,
    repeating or skipping frames by timestamp.
    """
    n = len(pts)
    gaps = np.diff(pts)
    if n < 2 or time_base is None or gaps.max() - gaps.min() <= max(1.0, 0.02 * float(np.median(gaps))):
        return np.arange(n, dtype=np.int64)
    ticks_per_frame = 1 / (fps * Fraction(time_base))  # time-base ticks per output frame
    duration = int(pts[-1] - pts[0]) + float(np.median(gaps))
    count = max(1, round(duration / ticks_per_frame))
    times = pts[0] + (np.arange(count) + 0.5) * float(ticks_per_frame)  # (count,) mid-frame ticks
    return np.clip(np.searchsorted(pts, times, side="right") - 1, 0, n - 1).astype(np.int64)
