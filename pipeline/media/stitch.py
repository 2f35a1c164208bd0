"""Join encoded segments without re-encoding and mux the dub audio once, as AAC cut to the video.

Packets are shifted by the frames before them; every segment has the same B-frame delay, so
decode timestamps stay increasing across joins. Video and audio packets are interleaved by time
so the muxer never buffers a whole track. `+faststart` puts the index first for streaming.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from musedub.infra.errors import InputError
from musedub.infra.storage import open_input

AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})
AAC_BIT_RATE = 192_000


def stitch(
    segments: Sequence[Path], fps: Fraction, audio_uri: str, output: Path, audio_identity: str | None = None
) -> int:
    """Write `output` (mp4) from segment files and the dub audio (as planned: `audio_identity`);
    return the number of frames."""
    with av.open(str(output), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        with av.open(str(segments[0])) as first:
            template = first.streams.video[0]
            video = out.add_stream_from_template(template)
            extradata = template.codec_context.extradata
        frames = sum(_count_frames(p, extradata) for p in segments)
        with open_input(audio_uri, "dub audio", audio_identity) as source, av.open(source) as audio_in:
            audio = _audio_packets(out, audio_in, Fraction(frames) / fps)
            streams = heapq.merge(_video_packets(segments, video, fps), audio, key=lambda item: item[0])
            for _, packet in streams:
                out.mux(packet)
    return frames


def _count_frames(path: Path, extradata: bytes | None) -> int:
    with av.open(str(path)) as seg:
        stream = seg.streams.video[0]
        if stream.codec_context.extradata != extradata:
            raise RuntimeError(f"segment {path.name} was encoded with other settings: its parameter sets differ")
        return sum(1 for p in seg.demux(stream) if p.size)


def _video_packets(
    segments: Sequence[Path], out_stream: av.stream.Stream, fps: Fraction
) -> Iterator[tuple[float, av.Packet]]:
    done = 0  # frames written before the current segment
    for path in segments:
        with av.open(str(path)) as seg:
            stream = seg.streams.video[0]
            shift = int(Fraction(done) / fps / stream.time_base)  # segment start in its time-base ticks
            count = 0
            for packet in seg.demux(stream):
                if not packet.size:
                    continue
                packet.pts += shift
                packet.dts += shift
                packet.stream = out_stream
                count += 1
                yield float(packet.dts * stream.time_base), packet
            done += count


def _audio_packets(
    out: av.container.OutputContainer, source: av.container.InputContainer, duration: Fraction
) -> Iterator[tuple[float, av.Packet]]:
    """AAC packets of the first audio stream of `source`, cut to exactly `duration` seconds.

    The stream is added to `out` before the first packet is asked for, so the header sees it.
    """
    if not source.streams.audio:
        raise InputError("dub audio has no audio stream: give a file that carries the speech")
    stream = source.streams.audio[0]
    rate = stream.rate if stream.rate in AAC_RATES else 48000
    layout = "mono" if stream.channels == 1 else "stereo"
    encoder = out.add_stream("aac", rate=rate, layout=layout)
    encoder.bit_rate = AAC_BIT_RATE
    return _encode_audio(source, stream, encoder, rate, layout, round(duration * rate))


def _encode_audio(
    source: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    encoder: av.audio.stream.AudioStream,
    rate: int,
    layout: str,
    limit: int,
) -> Iterator[tuple[float, av.Packet]]:
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate, frame_size=1024)
    written = 0

    def emit(frames: list[av.AudioFrame]) -> Iterator[tuple[float, av.Packet]]:
        nonlocal written
        for frame in frames:
            take = min(frame.samples, limit - written)
            if take <= 0:
                return
            if take < frame.samples:
                planes = frame.to_ndarray()[:, :take]  # (channels, take) planar float
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=layout)
                frame.sample_rate = rate
            frame.pts = written
            written += take
            for packet in encoder.encode(frame):
                yield float(packet.pts * packet.time_base), packet

    try:
        for decoded in source.decode(stream):
            yield from emit(resampler.resample(decoded))
            if written >= limit:
                break
        yield from emit(resampler.resample(None))
    except av.error.FFmpegError as exc:
        raise InputError(f"dub audio is corrupt ({exc.__class__.__name__}): re-export it") from None
    for packet in encoder.encode(None):
        yield float(packet.pts * packet.time_base), packet
