"""A source's 16 kHz mono audio as one row of preprocessing needs it: the whole track, or only the
absolute 30 s whisper windows around a span of its frames (a seek per window, not the whole file).

Whisper states of any frame come from the windows at absolute time (audio/prompts.py), so a span
that reads the windows its frames touch gets the states a whole-source read would give, but for
the first AAC frames after each seek, which decode without their predecessor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musedub.infra.errors import InputError
from musedub.models.constants import SAMPLE_RATE, WINDOW_SAMPLES
from musedub.pipeline.audio.windows import CONTEXT_BEFORE, SAMPLES_PER_WHISPER_FRAME, video_frame_count
from musedub.pipeline.dataset.clip_quality import SAMPLES_PER_FRAME
from musedub.pipeline.dataset.settings import TRAIN_FPS
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono, decode_audio_span

WINDOW_SECONDS = WINDOW_SAMPLES / SAMPLE_RATE  # 30.0
WHAT = "source video's audio"
# a 25 fps frame's prompt reads 4 whisper frames either side of its own 2 (audio/windows.py)
CONTEXT_SAMPLES = CONTEXT_BEFORE * SAMPLES_PER_WHISPER_FRAME


@dataclass(frozen=True)
class SourceAudio:
    """Samples [offset, offset + len(samples)) of the whole track; `num_samples` is the track's
    length, or (when the span's windows all came back full) a bound past every sample it reads."""

    samples: np.ndarray  # (n,) float32
    offset: int
    num_samples: int

    @classmethod
    def whole(cls, uri: str) -> SourceAudio:
        samples = decode_audio_16k_mono(uri, WHAT)
        return cls(samples, 0, len(samples))

    @classmethod
    def around(cls, uri: str, start: int, stop: int) -> SourceAudio:
        """The windows holding 25 fps frames [start, stop) and their whisper context, read in
        order until one comes back short (the track ends there)."""
        lo = max(start * SAMPLES_PER_FRAME - CONTEXT_SAMPLES, 0) // WINDOW_SAMPLES
        hi = (stop * SAMPLES_PER_FRAME + CONTEXT_SAMPLES - 1) // WINDOW_SAMPLES
        pieces: list[np.ndarray] = []
        for w in range(lo, hi + 1):
            decoded = decode_audio_span(uri, w * WINDOW_SECONDS, WINDOW_SECONDS, WHAT, SAMPLE_RATE)
            if decoded is None:
                raise InputError(f"{WHAT} {uri} has no audio stream: give a file that carries the speech")
            pieces.append(decoded[0])
            if len(decoded[0]) < WINDOW_SAMPLES:
                break
        samples = np.concatenate(pieces)
        offset = lo * WINDOW_SAMPLES
        if not np.isfinite(samples).all():
            raise InputError(f"{WHAT} {uri} holds NaN or infinite samples: re-export it as ordinary PCM")
        return cls(samples, offset, offset + len(samples))

    def frames(self) -> int:
        """25 fps frames that have audio (all frames up to the bound, when the end was not reached)."""
        return video_frame_count(self.num_samples, TRAIN_FPS)

    def read_window(self, w: int) -> np.ndarray:
        """Samples of 30 s window `w` (shorter for the last), for AudioPrompter.span."""
        a = w * WINDOW_SAMPLES - self.offset
        assert 0 <= a <= len(self.samples), f"window {w} was not read"
        return self.samples[a : a + WINDOW_SAMPLES]

    def under(self, start: int, stop: int) -> np.ndarray:
        """The samples under 25 fps frames [start, stop) -> (640 * (stop - start),) within the track."""
        a = start * SAMPLES_PER_FRAME - self.offset
        return self.samples[a : a + (stop - start) * SAMPLES_PER_FRAME]
