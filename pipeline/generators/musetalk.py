"""MuseTalk v1.5 as a plug-in: one fused VAE + UNet pass per batch of crops."""

from __future__ import annotations

import torch

from musedub.models.generator import MuseTalkGenerator
from musedub.pipeline.generators.base import Batch, SegmentInputs


class MuseTalkSegment:
    group = ("musetalk",)

    def __init__(self, model: MuseTalkGenerator, inputs: SegmentInputs) -> None:
        self.model, self.crops, self.prompts = model, inputs.crops, inputs.prompts

    def take(self, index: torch.Tensor) -> Batch:
        return {"crops": self.crops[index], "prompts": self.prompts[index]}

    def run(self, batch: Batch) -> torch.Tensor:
        # at inference the reference image is the target frame itself
        return self.model(batch["crops"], batch["crops"], batch["prompts"])


class MuseTalkFaces:
    def __init__(self, model: MuseTalkGenerator) -> None:
        self.model = model
        self.device = next(model.parameters()).device

    def segment(self, inputs: SegmentInputs) -> MuseTalkSegment:
        return MuseTalkSegment(self.model, inputs)

    def compile_static(self) -> None:
        self.model.compile_static()
