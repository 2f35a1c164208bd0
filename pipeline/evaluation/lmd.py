"""LMD, the lip landmark distance of `musedub eval`: how far the dub's mouth is from the source's (docs/METRICS.md).

Both mouths are the 20 points 48..67 of the 68-point set in the unit of the style generator's lip
motion (`mouth_motion`): the *source* frame's crop box, (0, 0) its top-left and (1, 1) its bottom-right.
One box for both sides, so a dub whose face box came out a little larger or shifted is not scored
as a moved mouth. A frame's distance is the mean over the 20 points of their Euclidean distance,
times CROP_SIZE: pixels of the 256x256 crop the generator paints (the crop is the box resized to it).

The source's mouths are kept by frame (40 numbers and a box a scored frame, less than the identity
descriptors eval keeps), then each dub frame is compared as it is tracked and only a sum is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from musedub.models.constants import CROP_SIZE
from musedub.models.style_predictor import mouth_motion
from musedub.pipeline.face.crop_geometry import Box


def _mouth(landmarks: np.ndarray, box: Box) -> torch.Tensor:
    """Landmarks (68, 2) in pixels -> the mouth (20, 2) in units of `box`."""
    corners = torch.tensor([box.x1, box.y1, box.x2, box.y2], dtype=torch.float64)  # (4,) x0, y0, x1, y1
    return mouth_motion(torch.as_tensor(landmarks, dtype=torch.float64), corners)


@dataclass
class LipDistance:
    """LMD of one job, folded frame by frame: the source's mouths first, then the dub's against them."""

    _source: dict[int, tuple[np.ndarray, Box]] = field(default_factory=dict)  # frame -> (20, 2) mouth, its box
    total: float = 0.0  # sum over compared frames of the mean point distance, crop px
    frames: int = 0  # dub frames compared

    def add_source(self, frame: int, landmarks: np.ndarray, box: Box) -> None:
        """A source frame with a whole face: landmarks (68, 2) in pixels and its crop box."""
        self._source[frame] = (_mouth(landmarks, box).numpy().astype(np.float32), box)

    def add_dub(self, source_frame: int, landmarks: np.ndarray) -> None:
        """A dub frame with a whole face (landmarks (68, 2) in pixels), against the source frame it was made
        from; skipped when that source frame had no whole face or was not scored."""
        kept = self._source.get(source_frame)
        if kept is None:
            return
        source_mouth, box = kept
        moved = _mouth(landmarks, box) - torch.from_numpy(source_mouth)  # (20, 2)
        self.total += float(torch.linalg.vector_norm(moved, dim=1).mean()) * CROP_SIZE
        self.frames += 1

    @property
    def value(self) -> float:
        """Mean over the compared frames, in crop pixels; NaN (not measured) when none was compared."""
        return self.total / self.frames if self.frames else float("nan")


def pooled_lmd(jobs: Iterable[tuple[float, int]]) -> tuple[float | None, int]:
    """Jobs' (LMD, frames compared) -> the mean over every frame compared in any job, so a long job weighs
    more (as FID pools faces), None when none was; and how many frames that is."""
    total, frames = 0.0, 0
    for value, count in jobs:
        if count:
            total, frames = total + value * count, frames + count
    return (total / frames if frames else None), frames
