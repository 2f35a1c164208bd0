"""Selective Information Sampling: for every frame of a clip, the frames it may take as reference.

A good reference shows the same head pose (jaw contour close) with a different mouth (inner
mouth far), so the UNet must read the mouth from the audio, not copy it. Per target frame i:
E_pose = the k frames closest in jaw contour, E_mouth = the k farthest in inner mouth, both by
mean point distance on landmarks normalised to the crop; candidates = E_pose ∩ E_mouth without
frames within `exclusion` of i; when that is empty, the frames exclusion < |i - j| <= fallback_radius.

Indices are 0-based iBUG: jaw 0..15 and inner mouth 60..66 inclusive, as the reference lists them.
Ties break by frame index (stable sort), so the sets are deterministic.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

JAW = np.arange(0, 16)
INNER_MOUTH = np.arange(60, 67)
ROW_BLOCK = 128  # target rows per distance block: bounds memory at O(block x n x points)


class SisSettings(BaseModel):
    """The options of `musedub index` (`musedub schema index`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: float = Field(0.51, gt=0, le=1, description="k as a fraction of the clip (reference code 0.51, paper 0.40)")
    exclusion: int = Field(5, ge=0, description="never a reference within this many frames of the target")
    fallback_radius: int = Field(80, description="5 x 16 frames (stage 2's sample length T): the fallback window")

    @model_validator(mode="after")
    def _window_beyond_exclusion(self) -> SisSettings:
        if self.fallback_radius <= self.exclusion:
            raise ValueError(f"fallback_radius {self.fallback_radius} must exceed exclusion {self.exclusion}")
        return self

    def k(self, frames: int) -> int:
        return max(1, round(self.ratio * frames))


def normalise_to_crop(landmarks: np.ndarray, boxes: np.ndarray, size: int = 256) -> np.ndarray:
    """landmarks (n, 68, 2) in frame px, boxes (n, 4) -> landmarks in the size x size crop."""
    origin = boxes[:, None, :2].astype(np.float32)  # (n, 1, 2)
    extent = np.maximum(boxes[:, None, 2:] - boxes[:, None, :2], 1).astype(np.float32)  # (n, 1, 2)
    return (landmarks - origin) / extent * size


def mean_point_distance(points: np.ndarray, rows: slice) -> np.ndarray:
    """points (n, p, 2) -> (len(rows), n): mean over points of the L2 distance between frames."""
    diff = points[rows, None] - points[None]  # (r, n, p, 2)
    return np.sqrt((diff**2).sum(-1)).mean(-1)


def candidate_sets(normalised: np.ndarray, settings: SisSettings) -> tuple[list[np.ndarray], np.ndarray]:
    """normalised (n, 68, 2) -> per frame its sorted candidate frames, and (n,) True where the
    fallback window was used."""
    n = len(normalised)
    k = settings.k(n)
    jaw, mouth = normalised[:, JAW], normalised[:, INNER_MOUTH]
    candidates: list[np.ndarray] = []
    fallback = np.zeros(n, bool)
    frames = np.arange(n)
    for lo in range(0, n, ROW_BLOCK):
        rows = slice(lo, min(lo + ROW_BLOCK, n))
        targets = frames[rows]
        pose = np.argsort(mean_point_distance(jaw, rows), axis=1, kind="stable")[:, :k]  # (r, k) nearest
        lips = np.argsort(-mean_point_distance(mouth, rows), axis=1, kind="stable")[:, :k]  # (r, k) farthest
        chosen = np.zeros((len(targets), n), bool)  # (r, n) membership of E_pose ∩ E_mouth
        in_pose = np.zeros_like(chosen)
        np.put_along_axis(in_pose, pose, True, axis=1)
        np.put_along_axis(chosen, lips, True, axis=1)
        gap = np.abs(targets[:, None] - frames[None])  # (r, n)
        chosen &= in_pose & (gap > settings.exclusion)
        window = (gap > settings.exclusion) & (gap <= settings.fallback_radius)
        empty = ~chosen.any(axis=1)
        chosen[empty] = window[empty]
        fallback[rows] = empty
        candidates.extend(np.flatnonzero(row).astype(np.int32) for row in chosen)
    return candidates, fallback
