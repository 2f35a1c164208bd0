"""Which frames `musedub eval` scores: every frame, or N spread over the whole video in SyncNet-sized runs.

A cap bounds the cost of long videos (face tracking dominates it). Taking the first N frames would
score only a film's opening, so the capped frames are spread instead: the video is cut into N / 16
equal parts and the 16 consecutive frames at the middle of each part are scored. Runs of 16 keep
every sample usable by LSE, whose SyncNet reads 16 consecutive frames.
"""

from __future__ import annotations

from typing import Any, Literal

from musedub.models.syncnet import SYNC_FRAMES

FrameSample = int | Literal["all"]


def parse_frames(value: Any) -> FrameSample:
    """'all', or a positive multiple of the SyncNet window (an int or its digits); else a ValueError saying so."""
    if value == "all":
        return "all"
    number = int(value) if isinstance(value, int | str) and str(value).isdigit() else 0
    if number < SYNC_FRAMES or number % SYNC_FRAMES:
        raise ValueError(f"give 'all' or a multiple of {SYNC_FRAMES} (one SyncNet window), got {value!r}")
    return number


def sampled_runs(count: int, frames: FrameSample) -> list[range]:
    """The runs of consecutive frame indices scored in a video of `count` frames, in order."""
    if frames == "all" or frames >= count:
        return [range(count)] if count else []
    parts = frames // SYNC_FRAMES
    runs = []
    for part in range(parts):
        start = (part * count) // parts  # the part is [start, end): at least 16 frames, since frames < count
        end = ((part + 1) * count) // parts
        middle = start + (end - start - SYNC_FRAMES) // 2
        runs.append(range(middle, middle + SYNC_FRAMES))
    return runs
