"""Clips of a real face for tests, benchmarks and the README's first run: scikit-image's
astronaut photo moved on a canvas (drift, zoom, a few degrees of turn), encoded with PyAV.

Needs scikit-image (the test extra).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage.data import astronaut

FACE_CENTRE = (225.0, 132.0)  # the astronaut's face in the 512x512 photo


def face_frame(t: float, size: tuple[int, int] = (320, 240), scale: float = 1.0) -> np.ndarray:
    """RGB (H, W, 3): the face at time t s, drifting a few px, scaling +-5%, turning +-3 degrees."""
    width, height = size
    angle = 3.0 * np.sin(2 * np.pi * t / 2.0)
    zoom = scale * (1.0 + 0.05 * np.sin(2 * np.pi * t / 3.0))
    matrix = cv2.getRotationMatrix2D(FACE_CENTRE, angle, zoom)  # (2, 3)
    matrix[:, 2] += (
        width / 2 - FACE_CENTRE[0] + 8 * np.sin(2 * np.pi * t / 2.5),
        height / 2 - FACE_CENTRE[1] + 4 * np.cos(2 * np.pi * t / 2.5),
    )
    return cv2.warpAffine(astronaut(), matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def faceless_frame(t: float, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """RGB (H, W, 3): the rocket corner of the photo, which holds no face."""
    width, height = size
    x = int(380 - 10 * np.sin(t))
    return np.ascontiguousarray(cv2.resize(astronaut()[300:500, x - 130 : x + 130], size))


def write_clip(
    path: Path,
    fps: Fraction,
    frames: int,
    size: tuple[int, int] = (320, 240),
    faceless: range = range(0),
    scale: float = 1.0,
    rotation: int = 0,
    crf: int = 12,
    audio: np.ndarray | None = None,
    x264_params: str = "",
) -> Path:
    """Encode `frames` frames at `fps` (H.264, yuv420p); frames in `faceless` show no face.
    `audio` (16 kHz mono float samples) is muxed as AAC, making a talking-head source video.

    `x264_params` shape the stream like a master's (e.g. "keyint=250:open-gop=1:b-pyramid=normal").
    `rotation` stores display-matrix metadata (degrees counterclockwise); pixels are stored turned
    the other way, so a player that honours it shows the face upright.
    """
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        turns = round(rotation / 90) % 4
        stream.width, stream.height = size if turns % 2 == 0 else size[::-1]
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            **({"x264-params": x264_params} if x264_params else {}),
        }
        sound = _audio_stream(container, 1, 16000, "aac") if audio is not None else None
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            t = float(i / fps)
            rgb = faceless_frame(t, size) if i in faceless else face_frame(t, size, scale)
            stored = np.ascontiguousarray(np.rot90(rgb, k=-turns)) if turns else rgb
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            _encode_audio(container, sound, audio[:, None])
    return path


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le") -> Path:
    """Encode float samples (n,) or (n, channels) in [-1, 1] with PyAV."""
    planar = samples[:, None] if samples.ndim == 1 else samples
    with av.open(str(path), "w") as container:
        _encode_audio(container, _audio_stream(container, planar.shape[1], rate, codec), planar)
    return path


def _audio_stream(container: av.container.OutputContainer, channels: int, rate: int, codec: str) -> av.AudioStream:
    return container.add_stream(codec, rate=rate, layout={1: "mono", 2: "stereo"}[channels])


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream, planar: np.ndarray) -> None:
    """Encode samples (n, channels) in [-1, 1] into an audio stream of an open container."""
    layout, rate, codec = stream.layout.name, stream.rate, stream.codec_context.name
    fmt = stream.codec_context.format.name if codec != "pcm_s16le" else "s16"
    frame_size = stream.codec_context.frame_size or 1024
    pcm = (np.clip(planar, -1, 1) * 32767).astype(np.int16)
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
    pts = 0
    for i in range(0, len(pcm), frame_size):
        chunk = np.ascontiguousarray(pcm[i : i + frame_size])  # (n, channels) interleaved
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        frame.pts = pts
        pts += len(chunk)
        for converted in resampler.resample(frame):
            container.mux(stream.encode(converted))
    container.mux(stream.encode(None))
