"""Inception-v3 as FID measures it: the TensorFlow 2015-12-05 graph that published FIDs use.

Published FIDs (TTUR's reference, pytorch-fid, clean-fid's legacy mode) take the 2048-d pool3
features of this network, not of torchvision's ImageNet Inception: its weights differ and so do
three details kept here, because TF computed them so: average pools in the mixed blocks ignore the
zero padding (`count_include_pad=False`), the last block pools with a max instead of an average,
and the classifier has 1008 logits. Module names follow pytorch-fid's port of those weights,
`pt_inception-2015-12-05-6726825d.pth` (a plain state_dict, batch-norm counters included), so that
file loads strictly. Input: RGB in [0, 1], resized bilinearly to 299x299 and scaled to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from musedub.infra.errors import ConfigError
from musedub.models.checkpoint import load_strict, read_state_dict

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
FID_SIZE = 299
FEATURES = 2048  # pool3 width at full size
STEM_WIDTH = 32  # Conv2d_1a_3x3's output channels at full size: a file's width divisor is read from it
BN_EPS = 1e-3  # TF's batch-norm epsilon
WIDTH_QUANTUM = 16  # every channel count of the network is a multiple of this


@dataclass(frozen=True)
class InceptionConfig:
    """`width_divisor` divides every channel count (same keys, narrower tensors); `logits` is the classifier's."""

    width_divisor: int = 1
    logits: int = 1008

    def __post_init__(self) -> None:
        if self.width_divisor < 1 or WIDTH_QUANTUM % self.width_divisor:
            raise ValueError(f"width_divisor must divide {WIDTH_QUANTUM} (every width is a multiple of it)")

    @property
    def features(self) -> int:
        return FEATURES // self.width_divisor


INCEPTION_CONFIG = InceptionConfig()
TINY_INCEPTION_CONFIG = InceptionConfig(width_divisor=16, logits=10)  # 128-d features, ~0.1 M parameters


class ConvBN(nn.Module):
    """conv (no bias) -> batch norm -> ReLU: every convolution of the network."""

    def __init__(
        self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


Width = Callable[[int], int]


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average that divides by the pixels inside the image, as TF's does."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1 | 1x1 > 5x5 | 1x1 > 3x3 > 3x3 | avg > 1x1."""

    def __init__(self, cin: int, pool: int, w: Width) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, w(64), 1)
        self.branch5x5_1 = ConvBN(cin, w(48), 1)
        self.branch5x5_2 = ConvBN(w(48), w(64), 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, w(64), 1)
        self.branch3x3dbl_2 = ConvBN(w(64), w(96), 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(w(96), w(96), 3, padding=1)
        self.branch_pool = ConvBN(cin, pool, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.branch5x5_2(self.branch5x5_1(x))
        three = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), five, three, self.branch_pool(_avg_pool(x))], 1)


class ReduceB(nn.Module):
    """35 -> 17 grid reduction (Mixed_6a): strided 3x3 | 1x1 > 3x3 > strided 3x3 | max pool."""

    def __init__(self, cin: int, w: Width) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, w(384), 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, w(64), 1)
        self.branch3x3dbl_2 = ConvBN(w(64), w(96), 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(w(96), w(96), 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), three, F.max_pool2d(x, 3, stride=2)], 1)


class MixedC(nn.Module):
    """17x17 block (Mixed_6b..6e): 7x7 convolutions factored into 1x7 and 7x1 pairs."""

    def __init__(self, cin: int, c7: int, w: Width) -> None:
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding)
        self.branch1x1 = ConvBN(cin, w(192), 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = ConvBN(c7, w(192), col[0], padding=col[1])
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = ConvBN(c7, w(192), row[0], padding=row[1])
        self.branch_pool = ConvBN(cin, w(192), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            double = conv(double)
        double = self.branch7x7dbl_5(double)
        return torch.cat([self.branch1x1(x), seven, double, self.branch_pool(_avg_pool(x))], 1)


class ReduceD(nn.Module):
    """17 -> 8 grid reduction (Mixed_7a): 1x1 > strided 3x3 | 1x1 > 1x7 > 7x1 > strided 3x3 | max pool."""

    def __init__(self, cin: int, w: Width) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, w(192), 1)
        self.branch3x3_2 = ConvBN(w(192), w(320), 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, w(192), 1)
        self.branch7x7x3_2 = ConvBN(w(192), w(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(w(192), w(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(w(192), w(192), 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], 1)


class MixedE(nn.Module):
    """8x8 block (Mixed_7b, 7c): 3x3s split into parallel 1x3 and 3x1; `max_pool` in the last block (TF's graph)."""

    def __init__(self, cin: int, w: Width, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(cin, w(320), 1)
        self.branch3x3_1 = ConvBN(cin, w(384), 1)
        self.branch3x3_2a = ConvBN(w(384), w(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(w(384), w(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, w(448), 1)
        self.branch3x3dbl_2 = ConvBN(w(448), w(384), 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(w(384), w(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(w(384), w(384), (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, w(192), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(three),
                self.branch3x3_2b(three),
                self.branch3x3dbl_3a(double),
                self.branch3x3dbl_3b(double),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInception(nn.Module):
    """[0, 1] RGB (B, 3, H, W), any size -> pool3 features (B, 2048 / width_divisor)."""

    def __init__(self, config: InceptionConfig = INCEPTION_CONFIG) -> None:
        super().__init__()
        self.config = config

        def w(channels: int) -> int:
            return channels // config.width_divisor

        self.Conv2d_1a_3x3 = ConvBN(3, w(32), 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(w(32), w(32), 3)
        self.Conv2d_2b_3x3 = ConvBN(w(32), w(64), 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(w(64), w(80), 1)
        self.Conv2d_4a_3x3 = ConvBN(w(80), w(192), 3)
        self.Mixed_5b = MixedA(w(192), w(32), w)
        self.Mixed_5c = MixedA(w(256), w(64), w)
        self.Mixed_5d = MixedA(w(288), w(64), w)
        self.Mixed_6a = ReduceB(w(288), w)
        self.Mixed_6b = MixedC(w(768), w(128), w)
        self.Mixed_6c = MixedC(w(768), w(160), w)
        self.Mixed_6d = MixedC(w(768), w(160), w)
        self.Mixed_6e = MixedC(w(768), w(192), w)
        self.Mixed_7a = ReduceD(w(768), w)
        self.Mixed_7b = MixedE(w(1280), w, max_pool=False)
        self.Mixed_7c = MixedE(w(2048), w, max_pool=True)
        # The published classifier: kept so the file loads strictly; FID reads the features before it.
        self.fc = nn.Linear(config.features, config.logits)

    @classmethod
    def random(cls, config: InceptionConfig) -> FIDInception:
        """Random weights in the published format (`init-random`), He-initialised: PyTorch's default
        initialisation shrinks the features to ~1e-9 over 47 layers, where FIDs lose all meaning."""
        model = cls(config)
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        return model.eval()

    @classmethod
    def from_file(cls, path: Path) -> FIDInception:
        """Strictly from pytorch-fid's file (or a random one in its format); widths are read from the file."""
        if not path.is_file():
            raise ConfigError(
                f"FID Inception weights {path} are missing: run `musedub weights download DIR` "
                "(or `musedub weights init-random --training DIR` offline, random weights), or pass --fid vgg"
            )
        state = read_state_dict(path)
        stem, fc = state.get("Conv2d_1a_3x3.conv.weight"), state.get("fc.weight")
        config = INCEPTION_CONFIG
        divisor = STEM_WIDTH // int(stem.shape[0]) if stem is not None and stem.ndim == 4 and stem.shape[0] else 0
        if fc is not None and divisor and divisor * stem.shape[0] == STEM_WIDTH and WIDTH_QUANTUM % divisor == 0:
            config = InceptionConfig(width_divisor=divisor, logits=int(fc.shape[0]))
        with torch.device("meta"):
            model = cls(config)
        load_strict(model, state, source=str(path), hint=f"use pytorch-fid's {INCEPTION_FILE} ({INCEPTION_URL})")
        return model.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if x.shape[-2:] != (FID_SIZE, FID_SIZE):
            x = F.interpolate(x, size=(FID_SIZE, FID_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # (B, 3, 299, 299) in [-1, 1]
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)  # (B, 768, 17, 17) after 6a
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a):
            x = block(x)  # (B, 1280, 8, 8) after 7a
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048) pool3
