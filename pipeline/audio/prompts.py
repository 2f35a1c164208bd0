"""Audio prompts for any range of video frames: [F, 50, D] from the absolute 30 s windows it touches.

Matches the reference at 25 fps: per window the encoder's hidden states (1500, 5, D), windows
joined in time, trimmed to floor(duration * 50) frames, zeros outside; video frame i reads
whisper frames floor(50 i / fps) - 4 ... +10, flattened time-major to 50 tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch

from musedub.infra.errors import InputError
from musedub.models.audio_encoder import WhisperAudioEncoder
from musedub.models.constants import SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES
from musedub.pipeline.audio.windows import (
    PROMPT_FRAMES,
    prompt_start,
    video_frame_count,
    whisper_frame_count,
    windows_for_frames,
)

WINDOWS_KEPT = 4  # encoded 30 s windows kept per prompter (11.5 MB each at whisper-tiny's size)


def gather_prompts(span: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """span (S, L+1, D), first span row of each frame (F,) -> prompts (F, 10 * (L+1), D), time-major."""
    rows = starts[:, None] + np.arange(PROMPT_FRAMES)  # (F, 10) indices into span
    prompts = span[rows]  # (F, 10, L+1, D)
    return prompts.reshape(len(starts), PROMPT_FRAMES * span.shape[1], span.shape[2])


class AudioPrompter:
    """Computes audio prompts for frame ranges; windows are read through a callback so a segment
    decodes only the 30 s windows it needs."""

    def __init__(self, encoder: WhisperAudioEncoder) -> None:
        self.encoder = encoder
        # (source, window) -> (1500, L+1, D): consecutive segments of one job share their 30 s
        # windows, so a job's audio is encoded about once however it is cut into segments
        self._kept: OrderedDict[tuple[str, int], torch.Tensor] = OrderedDict()
        self._silence: dict[Fraction, np.ndarray] = {}

    def for_frames(
        self,
        read_window: Callable[[int], np.ndarray],
        num_samples: int,
        fps: Fraction,
        start: int,
        stop: int,
        source: str = "",
    ) -> np.ndarray:
        """Prompts of frames [start, stop) -> float32 (stop - start, 10 * (L+1), D).

        `read_window(w)` returns 16 kHz mono samples [w*480000, (w+1)*480000) of the whole audio
        (shorter for the last window); `num_samples` is the whole audio's length. A `source`
        names that audio (with its content, e.g. a job key) so its encoded windows are reused.
        """
        total = video_frame_count(num_samples, fps)
        if total == 0:
            raise InputError(
                f"audio of {num_samples / 16000:.3f} s is shorter than one frame at {float(fps):.3f} fps: "
                "give longer audio"
            )
        if not 0 <= start < stop <= total:
            raise InputError(
                f"frame range [{start}, {stop}) is outside the audio's {total} frames: pick 0 <= A < B <= {total}"
            )
        span, lo = self.span(read_window, num_samples, fps, start, stop, source)
        starts = np.array([prompt_start(f, fps) - lo for f in range(start, stop)])
        return gather_prompts(span.numpy(), starts)

    def span(
        self,
        read_window: Callable[[int], np.ndarray],
        num_samples: int,
        fps: Fraction,
        start: int,
        stop: int,
        source: str = "",
    ) -> tuple[torch.Tensor, int]:
        """The hidden states of whisper frames [lo, hi) that frames [start, stop) read -> ((hi - lo, L+1, D), lo).

        Zeros outside the audio. Training stores this span per clip: at 25 fps frame f reads rows
        2 (f - start) ... + 10 of it, 5x less than the per-frame prompts.
        """
        lo = prompt_start(start, fps)
        hi = prompt_start(stop - 1, fps) + PROMPT_FRAMES
        states = self.encoder.num_states
        span = torch.zeros(hi - lo, states, self.encoder.dim)  # whisper frames [lo, hi), zeros outside the audio
        valid_end = whisper_frame_count(num_samples)
        windows = list(windows_for_frames(start, stop, fps, num_samples))
        for w, feats in self._encoded(read_window, windows, source).items():
            first = w * WINDOW_FRAMES
            a, b = max(first, lo), min(first + WINDOW_FRAMES, hi, valid_end)
            if a < b:
                span[a - lo : b - lo] = feats[a - first : b - first]
        return span, lo

    def _encoded(
        self, read_window: Callable[[int], np.ndarray], windows: list[int], source: str
    ) -> dict[int, torch.Tensor]:
        """Each window's hidden states (1500, L+1, D): kept ones reused, the rest encoded one at a
        time, so a window's bits never depend on which windows a worker happened to encode with it."""
        found = {w: self._kept[(source, w)] for w in windows if source and (source, w) in self._kept}
        for w in windows:
            if w not in found:
                found[w] = self.encoder.encode_windows([read_window(w)])[0]  # (1500, L+1, D)
        if source:
            for w in windows:
                self._kept[(source, w)] = found[w]
                self._kept.move_to_end((source, w))
            while len(self._kept) > WINDOWS_KEPT:
                self._kept.popitem(last=False)
        return found

    def silence(self, fps: Fraction) -> np.ndarray:
        """The prompt of a frame in the middle of a second of digital silence -> (50, D): what the
        model is shown to keep the mouth at rest (computed once per frame rate)."""
        if fps not in self._silence:
            second = np.zeros(SAMPLE_RATE, np.float32)
            middle = video_frame_count(len(second), fps) // 2
            self._silence[fps] = self.for_waveform(second, fps, middle, middle + 1)[0]
        return self._silence[fps]

    def for_waveform(
        self, samples: np.ndarray, fps: Fraction, start: int = 0, stop: int | None = None, source: str = ""
    ) -> np.ndarray:
        """Prompts from a whole in-memory 16 kHz mono waveform; `stop` defaults to the last frame."""
        end = video_frame_count(len(samples), fps) if stop is None else stop
        return self.for_frames(
            lambda w: samples[w * WINDOW_SAMPLES : (w + 1) * WINDOW_SAMPLES], len(samples), fps, start, end, source
        )
