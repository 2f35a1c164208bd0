"""The generator plug-in: what the model stage asks of MuseTalk and of the style model alike.

The stage owns what is common to both: moving a segment to the device once, filling fixed-shape
batches from one or several segments (`batching.FrameBatcher`), padding them and halving a batch
that runs out of memory. A generator only prepares a segment (what is per segment: the style
model's lip motion, its references) and then gives the model's inputs of any of its frames and
runs a batch of them. So a second model is a new plug-in, not a fork of the segment pipeline (its
pools, GPU actors and resumable batches come with it).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class SegmentInputs:
    """One segment's frames with a face to generate (k of them), as a generator sees them."""

    crops: torch.Tensor  # (k, 256, 256, 3) uint8 on the generator's device
    prompts: torch.Tensor  # (k, 50, D) float32 on the generator's device: the dub audio per frame
    seed_key: str  # the job's inputs and options (not its output): seeds per-frame noise
    frames: np.ndarray  # (k,) int64 output frame numbers
    tracks: np.ndarray  # (k,) int32 the face (track id) dubbed in each
    style_reference: str = ""  # the job's reference file (style only)
    style_steps: int = 1  # DDIM steps (style only)


Batch = dict[str, torch.Tensor]  # a model's inputs for B frames, every tensor batch-first


class SegmentFaces(Protocol):
    """One prepared segment. Frames of segments in one `group` (same model, same settings) may share
    a batch: `run` computes each frame from its own row of the batch alone."""

    group: Hashable

    def take(self, index: torch.Tensor) -> Batch:
        """Positions (B,) among the segment's OK frames (repeats allowed) -> the model's inputs of those frames."""
        ...

    def run(self, batch: Batch) -> torch.Tensor:
        """Inputs of B frames from any segments of this group -> faces (B, 256, 256, 3) uint8."""
        ...


class FaceGenerator(Protocol):
    device: torch.device

    def segment(self, inputs: SegmentInputs) -> SegmentFaces:
        """A segment's inputs -> the segment, prepared (not thread-safe: the stage calls it one at a time)."""
        ...

    def compile_static(self) -> None:
        """Compile for one fixed batch shape (the stage pads every batch to it)."""
        ...
