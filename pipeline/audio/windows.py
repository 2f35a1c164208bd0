"""Which whisper frames each video frame reads, in exact integer arithmetic.

Whisper frames run at 50 Hz (320 samples at 16 kHz) from absolute time 0 in fixed 30 s windows,
so the frames a segment needs — and the windows that hold them — follow from its frame range
alone. The frame rate is a Fraction (30000/1001, not 29): the reference casts it to int.
"""

from __future__ import annotations

from fractions import Fraction

from musedub.models.constants import SAMPLE_RATE, WINDOW_FRAMES

WHISPER_HZ = 50
SAMPLES_PER_WHISPER_FRAME = SAMPLE_RATE // WHISPER_HZ  # 320
CONTEXT_BEFORE = 4  # whisper frames before floor(m*i): 2 video frames of context, 2 whisper frames each
PROMPT_FRAMES = 10  # 2 left + itself + 2 right, 2 whisper frames each


def whisper_frame_count(num_samples: int) -> int:
    """floor(duration_s * 50) whisper frames hold real audio; later ones are zeros."""
    return num_samples // SAMPLES_PER_WHISPER_FRAME


def video_frame_count(num_samples: int, fps: Fraction) -> int:
    """floor(duration_s * fps) output frames for an audio of `num_samples` at 16 kHz."""
    return num_samples * fps.numerator // (SAMPLE_RATE * fps.denominator)


def prompt_start(frame: int, fps: Fraction) -> int:
    """First whisper frame of video frame `frame`'s 10-frame window: floor(frame * 50 / fps) - 4."""
    return frame * WHISPER_HZ * fps.denominator // fps.numerator - CONTEXT_BEFORE


def windows_for_frames(start: int, stop: int, fps: Fraction, num_samples: int) -> range:
    """The 30 s windows holding any real whisper frame that frames [start, stop) read."""
    first = max(prompt_start(start, fps), 0)
    last = min(prompt_start(stop - 1, fps) + PROMPT_FRAMES, whisper_frame_count(num_samples)) - 1
    if last < first:
        return range(0)
    return range(first // WINDOW_FRAMES, last // WINDOW_FRAMES + 1)
