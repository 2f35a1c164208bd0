"""A PatchGAN discriminator (stage 2): one for the whole face, one for the mouth region.

It returns every intermediate activation as well as the patch logits, so the generator's
feature-matching loss reads the same forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

DISCRIMINATOR_WIDTH = 64
TINY_DISCRIMINATOR_WIDTH = 8


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (features, logits (B, 1, h, w)); `layers` stride-2 blocks."""

    def __init__(self, width: int = DISCRIMINATOR_WIDTH, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2))]
        channels = width
        for i in range(1, layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, out, 4, stride, 1), nn.GroupNorm(min(32, out // 4), out), nn.LeakyReLU(0.2)
                )
            )
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(channels, 1, 4, 1, 1)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = []
        x = images
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features, self.head(x)
