"""MuseTalk v1.5 as a plug-in: one fused VAE + UNet pass per batch of crops."""

from __future__ import annotations

from musedub.models.generator import MuseTalkGenerator
from musedub.pipeline.generators.base import SegmentFaces, SegmentInputs


class MuseTalkFaces:
    def __init__(self, model: MuseTalkGenerator) -> None:
        self.model = model
        self.device = next(model.parameters()).device

    def segment(self, inputs: SegmentInputs) -> SegmentFaces:
        crops, prompts = inputs.crops, inputs.prompts
        # at inference the reference image is the target frame itself
        return lambda index: self.model(crops[index], crops[index], prompts[index])

    def compile_static(self) -> None:
        self.model.compile_static()
