"""Which source frame feeds each output frame when the dub audio and the video differ in length.

`cycle` (the reference's behaviour): frames run forward then backward, 0..N-1, N-1..0, ...;
`loop`: 0..N-1, 0..N-1, ...; both follow the audio's length. `trim-audio`: the output stops
with the video, and the audio is cut to it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

LengthPolicy = Literal["cycle", "loop", "trim-audio"]


def output_frame_count(audio_frames: int, video_frames: int, policy: LengthPolicy) -> int:
    """Output length: the audio's frame count, except `trim-audio`, which stops at the shorter."""
    return min(audio_frames, video_frames) if policy == "trim-audio" else audio_frames


def source_frames(start: int, stop: int, video_frames: int, policy: LengthPolicy) -> np.ndarray:
    """Source frame index of output frames [start, stop), int64 (stop - start,)."""
    if video_frames <= 0:
        raise ValueError("a video needs at least one frame")
    out = np.arange(start, stop, dtype=np.int64)
    if policy == "loop":
        return out % video_frames
    if policy == "cycle":
        phase = out % (2 * video_frames)
        return np.where(phase < video_frames, phase, 2 * video_frames - 1 - phase)
    if stop > video_frames:
        raise ValueError(f"trim-audio output has {video_frames} frames; frame {stop - 1} does not exist")
    return out
