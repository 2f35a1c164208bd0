"""The style-preserving generator as a plug-in: the predictor's lip motion, then DDIM in latent space.

Per segment, the predictor turns the dub audio's prompts into mouth points, in windows of the
trained length over the frames of one dubbed face at a time (a window never mixes two faces: each
borrows from its own speaker's reference). Per batch, the VAE encodes the masked crops, the
renderer samples from start noise seeded by (job, output frame), and the VAE decodes. Seeding by
frame gives a frame the same noise whichever batch, worker or run draws it, so a batch makes the
frames `dub` makes.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch

from musedub.models.style_predictor import StylePredictor
from musedub.models.style_renderer import DDIMSampler, RenderConditions, StyleRenderer, latent_mask
from musedub.models.vae import CropAutoencoder, mask_lower_half
from musedub.pipeline.audio.voicing import runs
from musedub.pipeline.generators.base import Batch, SegmentInputs
from musedub.pipeline.generators.style_reference import (
    REFERENCE_CROPS,
    WINDOW_FRAMES,
    StyleReference,
    read_references,
    reference_for,
)

log = logging.getLogger(__name__)
LATENT_SHAPE = (4, 32, 32)  # sd-vae-ft-mse's latent of a 256 x 256 crop


def frame_noise(seed_key: str, frames: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """Start noise (len(frames), *shape) float32 on the CPU, each frame's from a seed of (job, frame)."""
    out = torch.empty(len(frames), *shape)
    for i, frame in enumerate(frames):
        seed = int.from_bytes(hashlib.sha256(f"{seed_key}:{int(frame)}".encode()).digest()[:8], "little")
        out[i] = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return out


class StyleFaces:
    def __init__(self, predictor: StylePredictor, renderer: StyleRenderer, vae: CropAutoencoder) -> None:
        self.predictor, self.renderer, self.vae = predictor, renderer, vae
        self.sampler = DDIMSampler(renderer.config)
        param = next(renderer.parameters())
        self.device, self.dtype = param.device, param.dtype
        self._references: tuple[str, dict[int, StyleReference]] | None = None
        self._latents: dict[tuple[str, int], torch.Tensor] = {}

    def compile_static(self) -> None:
        log.warning("--compile applies to MuseTalk; the style generator runs eager")

    def _read(self, uri: str) -> dict[int, StyleReference]:
        """The job's references, read once per job on this worker (its segments come in order)."""
        if self._references is None or self._references[0] != uri:
            self._references = (uri, read_references(uri))
            self._latents = {}
        return self._references[1]

    def _reference_latents(self, uri: str, track: int, reference: StyleReference) -> torch.Tensor:
        """The reference faces' latents (N, 4, 32, 32), encoded once per job and face."""
        if (uri, track) not in self._latents:
            crops = torch.from_numpy(reference.crops).to(self.device)
            self._latents[(uri, track)] = self.vae.encode(self.vae.to_unit(crops))
        return self._latents[(uri, track)]

    def _motion(self, inputs: SegmentInputs, references: dict[int, StyleReference]) -> torch.Tensor:
        """Predicted mouth points (k, 20, 2): per run of one face, windows of WINDOW_FRAMES frames."""
        motion = torch.empty(len(inputs.tracks), 20, 2, device=self.device, dtype=self.dtype)
        for a, b, track in runs(inputs.tracks):
            ref = reference_for(references, track)
            audio, lips, mask = (
                torch.from_numpy(x)[None].to(self.device) for x in (ref.audio, ref.lips, ref.mask)
            )  # (1, R, L, ...)
            for start in range(a, b, WINDOW_FRAMES):
                stop = min(start + WINDOW_FRAMES, b)
                driving = inputs.prompts[None, start:stop].to(self.dtype)  # (1, T, 50, D)
                motion[start:stop] = self.predictor(driving, audio.to(self.dtype), lips.to(self.dtype), mask)[0]
        return motion

    @torch.no_grad()
    def segment(self, inputs: SegmentInputs) -> StyleSegment:
        references = self._read(inputs.style_reference)
        motion = self._motion(inputs, references)
        faces = sorted({int(t) for t in inputs.tracks})
        latents = [self._reference_latents(inputs.style_reference, t, reference_for(references, t)) for t in faces]
        # padded to REFERENCE_CROPS whatever a face has, so frames of any segments and jobs stack into one batch
        stacked = latents[0].new_zeros(len(faces), REFERENCE_CROPS, *latents[0].shape[1:])  # (F, N, 4, 32, 32)
        present = torch.zeros(len(faces), REFERENCE_CROPS, dtype=torch.bool, device=self.device)  # (F, N)
        for f, x in enumerate(latents):
            stacked[f, : len(x)], present[f, : len(x)] = x, True
        slot = torch.tensor([faces.index(int(t)) for t in inputs.tracks], dtype=torch.long, device=self.device)
        return StyleSegment(self, inputs, motion, stacked, present, slot)


class StyleSegment:
    """A segment's frames with their motion and their face's reference latents; frames of segments
    with the same DDIM steps batch together (each frame's start noise is its own)."""

    def __init__(
        self,
        model: StyleFaces,
        inputs: SegmentInputs,
        motion: torch.Tensor,
        refs: torch.Tensor,
        present: torch.Tensor,
        slot: torch.Tensor,
    ) -> None:
        self.model, self.inputs, self.motion = model, inputs, motion  # motion (k, 20, 2)
        # per face (F, N, 4, 32, 32) and (F, N); slot (k,): each frame's face, gathered per batch
        self.refs, self.present, self.slot = refs, present, slot
        self.group = ("style", inputs.style_steps)

    def take(self, index: torch.Tensor) -> Batch:
        model, inputs = self.model, self.inputs
        noise = frame_noise(inputs.seed_key, inputs.frames[index.cpu().numpy()], LATENT_SHAPE)  # (B, 4, 32, 32)
        return {
            "crops": inputs.crops[index],
            "motion": self.motion[index],
            "refs": self.refs[self.slot[index]],
            "present": self.present[self.slot[index]],
            "noise": noise.to(model.device, model.dtype),
        }

    @torch.no_grad()
    def run(self, batch: Batch) -> torch.Tensor:
        vae = self.model.vae
        masked = vae.encode(mask_lower_half(vae.to_unit(batch["crops"])))  # (B, 4, 32, 32)
        conditions = RenderConditions(masked, latent_mask(masked), batch["motion"], batch["refs"], batch["present"])
        clean = self.model.sampler.sample(self.model.renderer, conditions, batch["noise"], self.inputs.style_steps)
        return vae.decode(clean)
