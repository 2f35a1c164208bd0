"""One optimisation step of MuseTalk training (stage 1 or 2), the same in process and under Ray Train.

The UNet predicts the clean latent; the frozen VAE decoder turns it into pixels and every loss
is computed there, with gradients flowing back through the decoder. Discriminators may be DDP
modules like the UNet (so their gradients are averaged across workers); the generator's
adversarial and feature-matching terms read their unwrapped modules with parameters frozen, so
only the discriminator loss touches discriminator gradients.

Memory (`precision`, `activation_checkpointing`): forward passes and losses may run under bf16
autocast, with weights, gradients and AdamW states in fp32. bf16 keeps fp32's 8-bit exponent, so
small gradients do not underflow as in fp16 and no loss scaling (GradScaler) is needed.
Checkpointing keeps only block boundaries of the UNet and the VAE decoder (diffusers' own
gradient checkpointing) and only the inputs of the VGG19 perceptual loss, and recomputes the rest
in the backward pass: per frame they hold most of the activations a step keeps.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from musedub.infra.errors import ConfigError
from musedub.models.discriminator import PatchDiscriminator
from musedub.models.syncnet import SyncNet
from musedub.models.train_losses import (
    discriminator_loss,
    feature_matching,
    generator_adversarial,
    perceptual_loss,
    sync_loss,
)
from musedub.models.vae import CropAutoencoder
from musedub.models.vgg19 import VGG19Features
from musedub.pipeline.train.config import TrainConfig

log = logging.getLogger(__name__)
MOUTH_SIZE = (64, 128)  # (H, W) the mouth discriminator sees


def unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return getattr(module, "module", module)


def crop_mouths(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """images (N, 3, 256, 256), boxes (N, 4) x1 y1 x2 y2 -> (N, 3, 64, 128) mouth regions."""
    crops = [
        F.interpolate(img[None, :, y1:y2, x1:x2], size=MOUTH_SIZE, mode="bilinear", align_corners=False)
        for img, (x1, y1, x2, y2) in zip(images, boxes.tolist(), strict=True)
    ]
    return torch.cat(crops)


@dataclass
class TrainModels:
    unet: nn.Module  # MuseTalkUNet, possibly DDP-wrapped
    vae: CropAutoencoder  # frozen
    vgg: VGG19Features  # frozen
    face_d: nn.Module | None = None  # PatchDiscriminator, possibly DDP-wrapped (stage 2)
    mouth_d: nn.Module | None = None
    syncnet: SyncNet | None = None  # frozen (stage 2)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype forward passes autocast to, None for plain fp32. auto: bf16 on a GPU that has it."""
    if precision == "fp32":
        return None
    gpu_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "auto":
        return torch.bfloat16 if gpu_bf16 else None
    if device.type == "cuda" and not gpu_bf16:
        raise ConfigError(f"precision: bf16 needs a GPU with bf16 arithmetic (Ampere or newer), not {device}: set fp32")
    return torch.bfloat16


def set_activation_checkpointing(models: TrainModels, on: bool) -> None:
    """Turn diffusers' gradient checkpointing of the UNet and the VAE on or off. It only acts where
    gradients are recorded: the VAE's encoder (run without) and inference are unchanged."""
    for model in (unwrap(models.unet).unet, models.vae.vae):
        if on:
            model.enable_gradient_checkpointing()
        else:
            model.disable_gradient_checkpointing()


class TrainStep:
    def __init__(self, models: TrainModels, config: TrainConfig, device: torch.device) -> None:
        self.models = models
        self.config = config
        self.device = device
        self.dtype = autocast_dtype(config.precision, device)
        set_activation_checkpointing(models, config.activation_checkpointing)
        log.info(
            "training in %s%s",
            "fp32" if self.dtype is None else "bf16 autocast",
            " with activation checkpointing" if config.activation_checkpointing else "",
        )
        # fused: one kernel over all parameters; the default (foreach) holds a temporary copy of them while
        # it steps (+3.2 GiB for the full UNet) and ran 9x slower on a CPU (bench/train_step.py, docs/PERFORMANCE.md)
        self.generator_opt = torch.optim.AdamW(
            models.unet.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, fused=True
        )
        self.discriminators = [d for d in (models.face_d, models.mouth_d) if d is not None]
        self.discriminator_opt = (
            torch.optim.AdamW(
                [p for d in self.discriminators for p in d.parameters()],
                lr=config.discriminator_lr or config.lr,
                betas=config.betas,
                weight_decay=config.weight_decay,
                fused=True,
            )
            if self.discriminators
            else None
        )

    def gan_on(self, step: int) -> bool:
        return bool(self.discriminators) and step >= self.config.gan_start

    def __call__(self, micro_batches: list[dict[str, np.ndarray]], step: int) -> dict[str, float]:
        """Accumulate gradients over `micro_batches`, then one optimiser step; mean losses returned."""
        gan = self.gan_on(step)
        self.generator_opt.zero_grad(set_to_none=True)
        if self.discriminator_opt is not None:
            self.discriminator_opt.zero_grad(set_to_none=True)
        totals: dict[str, float] = defaultdict(float)
        share = 1.0 / len(micro_batches)
        for k, batch in enumerate(micro_batches):
            with ExitStack() as stack:
                if k < len(micro_batches) - 1:  # DDP averages gradients on the last micro-batch only
                    for module in (self.models.unet, *self.discriminators):
                        if hasattr(module, "no_sync"):
                            stack.enter_context(module.no_sync())
                with self.autocast():
                    losses, fake, real, mouths = self.generator_losses(batch, gan)
                (losses["total"] * share).backward()
                if gan:
                    with self.autocast():
                        d_loss = self.discriminator_losses(fake.detach(), real, mouths)
                    (d_loss * share).backward()
                    losses["discriminator"] = d_loss
            for name, value in losses.items():
                totals[name] += float(value.detach()) * share
        self.generator_opt.step()
        if gan and self.discriminator_opt is not None:
            self.discriminator_opt.step()
        return dict(totals)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None)

    def generator_losses(
        self, batch: dict[str, np.ndarray], gan: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        config, models = self.config, self.models
        targets = torch.from_numpy(batch["targets"]).to(self.device).flatten(0, 1)  # (B*T, 256, 256, 3)
        references = torch.from_numpy(batch["references"]).to(self.device).flatten(0, 1)
        prompts = torch.from_numpy(batch["prompts"]).to(self.device).flatten(0, 1)  # (B*T, 50, D)
        mouths = torch.from_numpy(batch["mouths"]).flatten(0, 1)  # (B*T, 4)
        with torch.no_grad():
            latents = models.vae.unet_input(targets, references)  # (N, 8, 32, 32)
            real = models.vae.to_unit(targets)  # (N, 3, 256, 256)
        fake = models.vae.decode_unit(models.unet(latents, prompts))  # (N, 3, 256, 256)
        if config.activation_checkpointing:
            perceptual = checkpoint(perceptual_loss, models.vgg, fake, real, use_reentrant=False)
        else:
            perceptual = perceptual_loss(models.vgg, fake, real)
        losses = {"l1": F.l1_loss(fake, real), "perceptual": perceptual}
        total = config.l1 * losses["l1"] + config.perceptual * losses["perceptual"]
        if gan:
            for name, weight, disc, fake_view, real_view in self._views(fake, real, mouths):
                for d in self.discriminators:
                    unwrap(d).requires_grad_(False)
                adversarial, features = generator_adversarial(disc, fake_view)
                matching = feature_matching(disc, features, real_view)
                losses[f"gan_{name}"], losses[f"fm_{name}"] = adversarial, matching
                total = total + weight * adversarial + config.feature_matching * matching
        if config.sync > 0 and models.syncnet is not None:
            b, t = batch["targets"].shape[:2]
            lower = fake[:, :, fake.shape[2] // 2 :].reshape(b, t, 3, fake.shape[2] // 2, fake.shape[3])
            mel = torch.from_numpy(batch["mel"]).to(self.device)  # (B, 80, 64)
            # fp32: CUDA autocast refuses binary_cross_entropy, and SyncNet is small
            with torch.autocast(self.device.type, enabled=False):
                losses["sync"] = sync_loss(models.syncnet, lower.float(), mel)
            total = total + config.sync * losses["sync"]
        losses["total"] = total
        return losses, fake, real, mouths

    def discriminator_losses(self, fake: torch.Tensor, real: torch.Tensor, mouths: torch.Tensor) -> torch.Tensor:
        for d in self.discriminators:
            unwrap(d).requires_grad_(True)
        total = fake.new_zeros(())
        wrapped = {"face": self.models.face_d, "mouth": self.models.mouth_d}
        for name, _, _, fake_view, real_view in self._views(fake, real, mouths):
            total = total + discriminator_loss(wrapped[name], real_view, fake_view)
        return total

    def _views(
        self, fake: torch.Tensor, real: torch.Tensor, mouths: torch.Tensor
    ) -> Iterator[tuple[str, float, nn.Module, torch.Tensor, torch.Tensor]]:
        """(name, weight, unwrapped discriminator, fake view, real view) per discriminator."""
        config, models = self.config, self.models
        if models.face_d is not None:
            yield "face", config.gan_face, unwrap(models.face_d), fake, real
        if models.mouth_d is not None:
            yield (
                "mouth",
                config.gan_mouth,
                unwrap(models.mouth_d),
                crop_mouths(fake, mouths),
                crop_mouths(real, mouths),
            )


def build_discriminators(width: int) -> tuple[PatchDiscriminator, PatchDiscriminator]:
    """Face (256x256 input) and mouth (64x128 input) PatchGANs of the same width."""
    return PatchDiscriminator(width, layers=3), PatchDiscriminator(width, layers=2)
