"""Training clips from a tracked source: runs of usable face frames, split at shot cuts and at a
maximum length, with the frames left out counted by reason.

A clip holds only frames whose face is found, whole in the frame and at least `min_face` px, so
every training sample (16 consecutive frames in stage 2) is a real face of one shot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musedub.pipeline.face.crop_geometry import FaceStatus

DROP_REASONS = ("no_face", "small_face", "leaving_frame", "not_speaking", "short_run")
_REASON_OF_STATUS = {
    FaceStatus.NO_FACE: "no_face",
    FaceStatus.TOO_SMALL: "small_face",
    FaceStatus.LEAVING_FRAME: "leaving_frame",
    FaceStatus.NOT_CHOSEN: "not_speaking",  # --speaking-only
}


@dataclass(frozen=True)
class ClipSpan:
    """Frames [start, stop) of the 25 fps source, all usable and in one shot."""

    start: int
    stop: int
    shot: int

    def __len__(self) -> int:
        return self.stop - self.start


def cut_clips(
    status: np.ndarray, shot: np.ndarray, max_frames: int, min_frames: int
) -> tuple[list[ClipSpan], dict[str, int]]:
    """status (N,) FaceStatus, shot (N,) -> clips and frames dropped per reason.

    Runs of OK frames break at any other status and at a shot change; runs longer than
    `max_frames` are split into near-equal parts (none shorter than needed), and runs shorter than
    `min_frames` are dropped as 'short_run'.
    """
    if max_frames < min_frames or min_frames < 1:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    dropped = dict.fromkeys(DROP_REASONS, 0)
    for code, reason in _REASON_OF_STATUS.items():
        dropped[reason] = int(np.count_nonzero(status == code))
    ok = status == FaceStatus.OK
    clips: list[ClipSpan] = []
    for start, stop in _runs(ok, shot):
        length = stop - start
        if length < min_frames:
            dropped["short_run"] += length
            continue
        parts = -(-length // max_frames)  # ceil: every part at most max_frames
        edges = start + (np.arange(parts + 1) * length) // parts
        clips.extend(ClipSpan(int(a), int(b), int(shot[start])) for a, b in zip(edges[:-1], edges[1:], strict=True))
    return clips, dropped


def _runs(ok: np.ndarray, shot: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, stop) runs of True in `ok` that stay within one shot."""
    n = len(ok)
    if n == 0:
        return []
    boundary = np.ones(n + 1, bool)  # boundary[i]: a run may start or end before frame i
    boundary[1:n] = (ok[1:] != ok[:-1]) | (shot[1:] != shot[:-1])
    edges = np.flatnonzero(boundary)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if ok[a]]
