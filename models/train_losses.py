"""MuseTalk's training losses, all in pixel space on decoded crops in [-1, 1]."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from musedub.models.discriminator import PatchDiscriminator
from musedub.models.syncnet import SyncNet
from musedub.models.vgg19 import VGG19Features

PYRAMID_SCALES = 4


def perceptual_loss(vgg: VGG19Features, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Sum over a 4-scale image pyramid of the mean L1 between relu{1..5}_1 features."""
    fake, real = (fake + 1) / 2, (real + 1) / 2  # VGG reads [0, 1]
    total = fake.new_zeros(())
    for scale in range(PYRAMID_SCALES):
        if scale:
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
        with torch.no_grad():
            targets = vgg(real)
        for f, r in zip(vgg(fake), targets, strict=True):
            total = total + F.l1_loss(f, r)
    return total


def generator_adversarial(discriminator: PatchDiscriminator, fake: torch.Tensor) -> tuple[torch.Tensor, list]:
    """LSGAN generator term mean((D(fake) - 1)^2), and D's features of `fake` for feature matching."""
    features, logits = discriminator(fake)
    return ((logits - 1) ** 2).mean(), features


def discriminator_loss(discriminator: PatchDiscriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN: mean((D(real) - 1)^2) + mean(D(fake)^2), in one forward pass over both."""
    _, logits = discriminator(torch.cat([real, fake.detach()]))
    real_logits, fake_logits = logits.chunk(2)
    return ((real_logits - 1) ** 2).mean() + (fake_logits**2).mean()


def feature_matching(
    discriminator: PatchDiscriminator, fake_features: list[torch.Tensor], real: torch.Tensor
) -> torch.Tensor:
    """Mean L1 between D's activations on the generated and the real image, layer by layer."""
    with torch.no_grad():
        real_features, _ = discriminator(real)
    return sum(F.l1_loss(f, r) for f, r in zip(fake_features, real_features, strict=True)) / len(real_features)


def sync_loss(syncnet: SyncNet, lower_halves: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """BCE of SyncNet's similarity against 1: lower halves (B, 16, 3, 128, 256), mel (B, 80, 64)."""
    similarity = syncnet(lower_halves, mel).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(similarity, torch.ones_like(similarity))
