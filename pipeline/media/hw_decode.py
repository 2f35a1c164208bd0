"""NVDEC decode through PyAV's hardware acceleration, with FFmpeg's software decoder as the fallback.

NVDEC can take H.264 decode off the CPU cores that the CPU stages (landmarks, blend, encode) need.
Where no CUDA device opens (no GPU or driver, an actor Ray gave no GPU), the process logs one line
and decodes on the CPU, so "cuda" is always safe to ask for. A driver without NVDEC (no
`libnvcuvid.so.1`, e.g. a container without the "video" driver capability) fails later, when the
decoder starts: FFmpeg then decodes in software, which bench/decode.py's `surface` shows.
"""

from __future__ import annotations

import logging
from typing import IO, Literal

import av
from av.codec.hwaccel import HWAccel

Decoder = Literal["cpu", "cuda"]

# NVDEC downloads semi-planar surfaces; FFmpeg's software decoders give the planar layouts. swscale
# converts nv12 to rgb24 by another path than yuv420p (up to 36 levels apart on a 1080p astronaut
# frame, PyAV 18.1 / FFmpeg 8.1), while unpacking nv12 to yuv420p is lossless: so frames are unpacked.
PLANAR_OF = {"nv12": "yuv420p", "nv16": "yuv422p", "p010le": "yuv420p10le", "p210le": "yuv422p10le"}

log = logging.getLogger(__name__)
_unavailable: str | None = None  # why no CUDA device opened in this process; not retried once set
_logged: set[str] = set()


def _once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        log.warning(message)


def nvdec_unavailable() -> str | None:
    """Why no CUDA device opened for NVDEC in this process; None when one did or none was asked for."""
    return _unavailable


def open_for_decode(source: str | IO[bytes], decoder: Decoder) -> tuple[av.container.InputContainer, bool]:
    """The open container of `source` and whether NVDEC decodes its first video stream.

    `source` is a path or a seekable file (`infra.storage.open_input`); a failed hardware open
    rewinds it and opens it again for the CPU.
    """
    global _unavailable
    if decoder == "cpu" or _unavailable is not None:
        return av.open(source, mode="r"), False
    # the primary context is the one torch uses: no CUDA context of its own (device memory) per reader
    accel = HWAccel("cuda", allow_software_fallback=True, options={"primary_ctx": "1"})
    try:
        container = av.open(source, mode="r", hwaccel=accel)
    except av.error.FFmpegError as exc:
        _unavailable = f"{exc.__class__.__name__}: {exc}"
        _once(f"NVDEC unavailable ({_unavailable}): this process decodes video on the CPU")
        if not isinstance(source, str):
            source.seek(0)
        return av.open(source, mode="r"), False
    context = container.streams.video[0].codec_context if container.streams.video else None
    if context is None or not context.is_hwaccel:
        _once(f"NVDEC has no decoder for {context.name if context else 'this input'}: decoding it on the CPU")
        return container, False
    return container, True


def planar(frame: av.VideoFrame) -> av.VideoFrame:
    """`frame` in the planar layout a software decoder gives (colour tags kept), so its RGB
    conversion is the CPU decode's; other formats are returned as they are."""
    layout = PLANAR_OF.get(frame.format.name)
    return frame if layout is None else frame.reformat(format=layout)
