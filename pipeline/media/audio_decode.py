"""Any audio (or the audio track of a video) -> 16 kHz mono float32, with PyAV.

Channels are resampled as they are and averaged afterwards (what librosa's mono load does),
rather than left to swresample's downmix matrix, which scales by 1/sqrt(2).
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

from musedub.infra.errors import InputError
from musedub.models.constants import SAMPLE_RATE
from musedub.pipeline.media.limits import MediaLimits
from musedub.pipeline.media.open import open_media
from musedub.pipeline.media.probe import header_seconds

_EXACT_SCALE = {"s16": 2.0**-15, "s16p": 2.0**-15, "s32": 2.0**-31, "s32p": 2.0**-31, "flt": 1.0, "fltp": 1.0}


def audio_16k_mono_pieces(uri: str, what: str = "audio", expect: str | None = None) -> Iterator[np.ndarray]:
    """The first audio stream of `uri` as float32 pieces at 16 kHz, channels averaged, so a
    feature-length track can be measured without holding it (a 2-hour track is 460 MB of samples).

    Raises InputError naming `what` for a file that is not audio, too long, corrupt, holding no
    samples, or holding NaN/Inf samples (after the last piece, with how many)."""
    with open_media(uri, what, "a wav, mp3, m4a, ...", expect) as container:
        if not container.streams.audio:
            raise InputError(f"{what} {uri} has no audio stream: give a file that carries the speech")
        stream = container.streams.audio[0]
        limits = MediaLimits.from_env()
        limits.check_seconds(what, uri, header_seconds(container, stream))
        most = int(limits.max_seconds * SAMPLE_RATE)
        count, bad, first_bad = 0, 0, 0
        resampler: av.AudioResampler | None = None
        try:
            for frame in container.decode(stream):
                direct = _packed_float(frame) if resampler is None else None
                if direct is None and resampler is None:
                    resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=SAMPLE_RATE)
                outs = [direct] if direct is not None else [out.to_ndarray() for out in resampler.resample(frame)]
                for piece in (_mean_channels(out, len(frame.layout.channels)) for out in outs):
                    broken = np.flatnonzero(~np.isfinite(piece))
                    if broken.size and not bad:
                        first_bad = count + int(broken[0])
                    bad += broken.size
                    count += len(piece)
                    yield piece
                if count > most:  # headers may not say (or lie); the samples do
                    limits.check_seconds(what, uri, count / SAMPLE_RATE)
            if resampler is not None:
                for piece in (_to_mono(out) for out in resampler.resample(None)):
                    count += len(piece)
                    yield piece
        except av.error.FFmpegError as exc:
            raise InputError(f"{what} {uri} is corrupt ({exc.__class__.__name__}): re-export the file") from None
    if count == 0:
        raise InputError(f"{what} {uri} holds no samples (0 s): give audio at least one video frame long")
    if bad:
        raise InputError(
            f"{what} {uri} holds {bad} NaN or infinite sample(s), the first at {first_bad / SAMPLE_RATE:.3f} s: "
            "re-export it as ordinary PCM"
        )


def decode_audio_16k_mono(uri: str, what: str = "audio", expect: str | None = None) -> np.ndarray:
    """The first audio stream of `uri` as float32 samples at 16 kHz, channels averaged."""
    return np.concatenate(list(audio_16k_mono_pieces(uri, what, expect)))


def _to_mono(frame: av.AudioFrame) -> np.ndarray:
    """A packed float frame -> (n,) mono."""
    return _mean_channels(frame.to_ndarray(), len(frame.layout.channels))


def _mean_channels(packed: np.ndarray, channels: int) -> np.ndarray:
    """(1, n*channels) interleaved float32 -> (n, channels) -> mean -> (n,)."""
    return packed.reshape(-1, channels).mean(axis=1, dtype=np.float32)


def _packed_float(frame: av.AudioFrame) -> np.ndarray | None:
    """A frame already at 16 kHz as packed float32 (1, n*channels), bit for bit what
    AudioResampler(format="flt") makes of it (integers times 2^-15 or 2^-31 in float32, floats as
    they are), without its filter graph (about 40% of decoding a 16 kHz WAV); None for a frame
    that needs resampling or another conversion."""
    scale = _EXACT_SCALE.get(frame.format.name)
    if frame.sample_rate != SAMPLE_RATE or scale is None:
        return None
    samples = frame.to_ndarray()
    if frame.format.is_planar:  # (channels, n) -> interleaved
        samples = samples.T
    packed = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
    return packed * np.float32(scale) if scale != 1 else packed


def decode_audio_span(
    uri: str, start: float, seconds: float, what: str = "video", rate: int | None = None
) -> tuple[np.ndarray, int] | None:
    """The first audio stream's samples from `start` s for `seconds` s, mono at its own rate (or
    resampled to `rate`) -> (samples (n,) float32, rate); None when `uri` has no audio stream.

    Seeks instead of decoding from the top, so a chunk of a film reads only its own span.
    """
    with open_media(uri, what, "a video file") as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        native = stream.codec_context.sample_rate or stream.rate
        if not native:
            return None
        rate = rate or native
        chunks: list[np.ndarray] = []
        wanted = int(round(seconds * rate))
        have = 0
        try:
            if start > 0 and stream.time_base:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            packer: av.AudioResampler | None = None
            for frame in container.decode(stream):
                if packer is None:  # at the native rate a format change only, so no resampling delay
                    packer = av.AudioResampler(format="flt", layout=frame.layout, rate=rate)
                begins = float(frame.time) if frame.time is not None else start
                samples = np.concatenate([_to_mono(out) for out in packer.resample(frame)] or [np.zeros(0, np.float32)])
                skip = max(0, int(round((start - begins) * rate)))
                if begins + len(samples) / rate <= start:
                    continue
                if not chunks and begins > start:  # the stream starts late: silence until it does
                    chunks.append(np.zeros(int(round((begins - start) * rate)), np.float32))
                chunks.append(samples[skip:])
                have = sum(len(c) for c in chunks)
                if have >= wanted:
                    break
        except av.error.FFmpegError as exc:
            raise InputError(f"{what} {uri} is corrupt ({exc.__class__.__name__}): re-export the file") from None
    joined = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return joined[:wanted], int(rate)
