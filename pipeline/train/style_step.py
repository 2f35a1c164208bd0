"""One optimisation step of the style generator's models, the same in process and under Ray Train.

Predictor: L1 (and optionally MSE) between predicted and true mouth points, plus a velocity term,
L1 between their frame-to-frame motions, so the lips move as the speaker's do, not only sit where
they sit on average. Renderer: the standard noise-prediction MSE on the VAE latent of the target
crop (`DDIMSampler.training_inputs`), conditioned on the masked crop's latent, the target frame's
lip motion and the latents of reference frames of the same speaker; the frozen VAE encodes
posterior means, as for MuseTalk. An optional VGG19 loss compares the decoded clean-latent
estimate with the crop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from musedub.models.style_predictor import stack_references
from musedub.models.style_renderer import DDIMSampler, RenderConditions, latent_mask
from musedub.models.train_losses import perceptual_loss
from musedub.models.vae import CropAutoencoder, mask_lower_half
from musedub.models.vgg19 import VGG19Features
from musedub.pipeline.train.style_config import StyleTrainConfig
from musedub.pipeline.train.style_data import PredictorSample, RendererSample

Batch = dict[str, torch.Tensor]


def predictor_batch(samples: Sequence[PredictorSample], device: torch.device) -> Batch:
    """Samples -> audio (B, T, 50, D), lips (B, T, 20, 2) and references padded by `stack_references`."""
    windows = [
        [
            (torch.from_numpy(a), torch.from_numpy(lips))
            for a, lips in zip(s.reference_audio, s.reference_lips, strict=True)
        ]
        for s in samples
    ]
    audio, lips, mask = stack_references(windows)  # (B, R, L, 50, D), (B, R, L, 20, 2), (B, R, L)
    return {
        "audio": torch.from_numpy(np.stack([s.audio for s in samples])).to(device),
        "lips": torch.from_numpy(np.stack([s.lips for s in samples])).to(device),
        "reference_audio": audio.to(device),
        "reference_lips": lips.to(device),
        "reference_mask": mask.to(device),
    }


def renderer_batch(samples: Sequence[RendererSample], device: torch.device) -> Batch:
    """Samples -> target crops (B, 256, 256, 3), motion (B, 20, 2), references (B, N, 256, 256, 3)
    zero-padded to the batch's largest N, with a mask (B, N) True on real ones."""
    count = max(len(s.references) for s in samples)
    references = np.zeros((len(samples), count, *samples[0].references.shape[1:]), np.uint8)
    mask = np.zeros((len(samples), count), bool)
    for b, s in enumerate(samples):
        references[b, : len(s.references)] = s.references
        mask[b, : len(s.references)] = True
    return {
        "targets": torch.from_numpy(np.stack([s.target for s in samples])).to(device),
        "motion": torch.from_numpy(np.stack([s.motion for s in samples])).to(device),
        "references": torch.from_numpy(references).to(device),
        "reference_mask": torch.from_numpy(mask).to(device),
    }


def predictor_losses(model: nn.Module, batch: Batch, config: StyleTrainConfig) -> dict[str, torch.Tensor]:
    predicted = model(batch["audio"], batch["reference_audio"], batch["reference_lips"], batch["reference_mask"])
    truth = batch["lips"]  # (B, T, 20, 2)
    losses = {
        "l1": F.l1_loss(predicted, truth),
        "l2": F.mse_loss(predicted, truth),
        "velocity": F.l1_loss(predicted.diff(dim=1), truth.diff(dim=1)),  # (B, T-1, 20, 2)
    }
    losses["total"] = config.l1 * losses["l1"] + config.l2 * losses["l2"] + config.velocity * losses["velocity"]
    return losses


@dataclass
class RendererModels:
    renderer: nn.Module  # StyleRenderer, possibly DDP-wrapped
    vae: CropAutoencoder  # frozen
    vgg: VGG19Features | None = None  # frozen; only with a perceptual weight


def renderer_losses(
    models: RendererModels, sampler: DDIMSampler, batch: Batch, config: StyleTrainConfig
) -> dict[str, torch.Tensor]:
    vae = models.vae
    targets, references, present = batch["targets"], batch["references"], batch["reference_mask"]
    with torch.no_grad():
        images = vae.to_unit(targets)  # (B, 3, 256, 256)
        clean = vae.encode(images)  # (B, 4, 32, 32)
        masked = vae.encode(mask_lower_half(images))
        real = vae.encode(vae.to_unit(references[present]))  # (real references, 4, 32, 32)
        reference_latents = real.new_zeros(*present.shape, *real.shape[1:])  # (B, N, 4, 32, 32)
        reference_latents[present] = real
    noisy, timesteps, noise = sampler.training_inputs(clean)
    conditions = RenderConditions(masked, latent_mask(clean), batch["motion"], reference_latents, present)
    predicted = models.renderer(noisy, timesteps, conditions)  # (B, 4, 32, 32)
    losses = {"noise": F.mse_loss(predicted, noise)}
    losses["total"] = losses["noise"]
    if config.perceptual > 0 and models.vgg is not None:
        alpha_bar = sampler.alpha_bar[timesteps.cpu()].to(clean)[:, None, None, None]  # (B, 1, 1, 1)
        estimate = (noisy - (1 - alpha_bar).sqrt() * predicted) / alpha_bar.sqrt()  # clean-latent estimate
        losses["perceptual"] = perceptual_loss(models.vgg, vae.decode_unit(estimate), images)
        losses["total"] = losses["total"] + config.perceptual * losses["perceptual"]
    return losses


class StyleStep:
    """AdamW on one trainable model; gradients accumulated over micro-batches, DDP-synchronised once."""

    def __init__(
        self,
        model: nn.Module,
        losses: Callable[[Any], dict[str, torch.Tensor]],
        config: StyleTrainConfig,
    ) -> None:
        self.model = model
        self.losses = losses
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )

    def __call__(self, micro_batches: list[Any], step: int) -> dict[str, float]:
        """Mean losses over `micro_batches` after one optimiser step (`step` is unused: no schedule)."""
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = defaultdict(float)
        share = 1.0 / len(micro_batches)
        for k, batch in enumerate(micro_batches):
            with ExitStack() as stack:
                if k < len(micro_batches) - 1 and hasattr(self.model, "no_sync"):
                    stack.enter_context(self.model.no_sync())
                losses = self.losses(batch)
                (losses["total"] * share).backward()
            for name, value in losses.items():
                totals[name] += float(value.detach()) * share
        self.optimizer.step()
        return dict(totals)
