"""A job's output frames cut into segments: the unit of parallel work, retry and resume.

Ids are uuid5 of the job key (inputs' checksums, options, weights) and the frame span, so a rerun
of the same job finds its own segments and a changed job never reuses stale ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from fractions import Fraction

NAMESPACE = uuid.UUID("6c1f2a7e-3f1b-5d0e-9a43-6d75736564b1")


def job_id_for(video: str, audio: str, output: str) -> str:
    """A deterministic id for a (video, audio, output) job."""
    return str(uuid.uuid5(NAMESPACE, "\n".join((video, audio, output))))


@dataclass(frozen=True)
class Segment:
    """Output frames [start, stop) of the job whose key is `job_key`."""

    job_key: str
    index: int
    start: int
    stop: int

    @property
    def segment_id(self) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{self.job_key}:{self.start}:{self.stop}"))

    @property
    def frames(self) -> int:
        return self.stop - self.start


def plan_segments(job_key: str, total_frames: int, fps: Fraction, seconds: float) -> list[Segment]:
    """Segments of about `seconds` each (at least one frame); the last one takes the remainder."""
    size = max(1, round(Fraction(seconds) * fps))
    return [
        Segment(job_key, i, start, min(start + size, total_frames))
        for i, start in enumerate(range(0, total_frames, size))
    ]
