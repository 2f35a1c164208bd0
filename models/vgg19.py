"""VGG19's convolutional trunk for the perceptual loss, keyed as the ImageNet release is.

`features.{i}.weight` indices follow the published `vgg19-dcbb9e9d.pth`, so that file loads
strictly (its classifier keys are dropped). Widths are read from the file, so test-sized random
trunks in the same key layout load through the same code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from musedub.infra.errors import ConfigError
from musedub.models.checkpoint import load_strict, read_state_dict

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_WIDTHS = (64, 128, 256, 512, 512)
TINY_VGG19_WIDTHS = (8, 8, 16, 16, 16)
CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layers(widths: tuple[int, ...]) -> list[nn.Module]:
    """conv-relu x n then max-pool per block, as torchvision numbers them (the last pool is kept)."""
    layers: list[nn.Module] = []
    channels = 3
    for width, convs in zip(widths, CONVS_PER_BLOCK, strict=True):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=False)]
            channels = width
        layers.append(nn.MaxPool2d(2, 2))
    return layers


class VGG19Features(nn.Module):
    """[0, 1] RGB (B, 3, H, W) -> relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 feature maps."""

    def __init__(self, widths: tuple[int, ...] = VGG19_WIDTHS) -> None:
        super().__init__()
        self.features = nn.Sequential(*_layers(widths))
        relus = [i for i, m in enumerate(self.features) if isinstance(m, nn.ReLU)]
        firsts = [sum(CONVS_PER_BLOCK[:b]) for b in range(len(CONVS_PER_BLOCK))]  # first conv of each block
        self.taps = [relus[i] for i in firsts]  # features indices 1, 6, 11, 20, 29 at full size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_file(cls, path: Path) -> VGG19Features:
        state = {k: v for k, v in read_state_dict(path).items() if k.startswith("features.")}
        convs = sorted((int(k.split(".")[1]), v) for k, v in state.items() if k.endswith(".weight"))
        if len(convs) != sum(CONVS_PER_BLOCK):
            raise ConfigError(f"VGG19 file {path} has {len(convs)} conv layers, not 16: use {VGG19_FILE}")
        ends = [sum(CONVS_PER_BLOCK[: b + 1]) - 1 for b in range(len(CONVS_PER_BLOCK))]
        widths = tuple(int(convs[i][1].shape[0]) for i in ends)
        model = cls(widths)
        load_strict(model, state, source=str(path), hint=f"use torchvision's ImageNet {VGG19_FILE}")
        return model.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images - self.mean) / self.std
        taps, out = set(self.taps), []
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out
