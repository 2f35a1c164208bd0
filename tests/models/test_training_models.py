"""VGG19 in torchvision's key layout, our SyncNet, the discriminators and the loss formulas."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from musedub.infra.errors import ConfigError
from musedub.models.discriminator import PatchDiscriminator
from musedub.models.syncnet import TINY_SYNCNET_CONFIG, SyncNet
from musedub.models.train_losses import discriminator_loss, feature_matching, perceptual_loss, sync_loss
from musedub.models.vgg19 import TINY_VGG19_WIDTHS, VGG19Features

TORCHVISION_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def test_vgg19_keys_and_taps_are_torchvision_s() -> None:
    with torch.device("meta"):
        vgg = VGG19Features()
    expected = {f"features.{i}.{p}" for i in TORCHVISION_CONVS for p in ("weight", "bias")}
    assert set(vgg.state_dict()) == expected
    assert vgg.taps == [1, 6, 11, 20, 29]  # relu1_1 .. relu5_1
    assert vgg.state_dict()["features.34.weight"].shape == (512, 512, 3, 3)


def test_vgg19_loads_a_release_shaped_file_strictly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vgg = VGG19Features(TINY_VGG19_WIDTHS)
    state = dict(vgg.state_dict())
    state["classifier.0.weight"] = torch.zeros(4, 4)  # the release's head: dropped
    torch.save(state, tmp_path / "vgg.pth")
    loaded = VGG19Features.from_file(tmp_path / "vgg.pth")
    image = torch.rand(1, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(vgg(image), loaded(image), strict=True))
    assert [f.shape[1] for f in loaded(image)] == list(TINY_VGG19_WIDTHS)
    del state["features.34.weight"], state["features.34.bias"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(ConfigError, match="15 conv layers"):
        VGG19Features.from_file(tmp_path / "short.pth")


def test_syncnet_round_trip_and_range(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SyncNet(TINY_SYNCNET_CONFIG).eval()
    net.save_pretrained(tmp_path / "syncnet")
    loaded = SyncNet.from_pretrained(tmp_path / "syncnet")
    faces, mel = torch.rand(3, 16, 3, 128, 256) * 2 - 1, torch.randn(3, 80, 64)
    similarity = loaded(faces, mel)
    assert torch.equal(similarity, net(faces, mel))
    assert similarity.shape == (3,) and bool(((similarity >= 0) & (similarity <= 1 + 1e-6)).all())
    with pytest.raises(ConfigError, match="train-syncnet"):
        SyncNet.from_pretrained(tmp_path / "missing")


def test_loss_formulas() -> None:
    torch.manual_seed(0)
    vgg = VGG19Features(TINY_VGG19_WIDTHS)
    image = torch.rand(2, 3, 128, 128) * 2 - 1  # 4 pyramid levels, 4 pools: 128 is the least
    assert float(perceptual_loss(vgg, image, image)) == 0.0
    assert float(perceptual_loss(vgg, image, -image)) > 0.0
    d = PatchDiscriminator(8, layers=3)
    features, logits = d(torch.zeros(2, 3, 256, 256))
    assert len(features) == 4 and logits.shape == (2, 1, 30, 30)
    assert float(feature_matching(d, features, torch.zeros(2, 3, 256, 256))) == 0.0

    # LSGAN: a discriminator answering 1 on real and 0 on fake has zero loss
    class Constant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[list, torch.Tensor]:
            return [], (x.mean(dim=(1, 2, 3), keepdim=True) > 0).float()

    real, fake = torch.ones(2, 3, 8, 8), -torch.ones(2, 3, 8, 8)
    assert float(discriminator_loss(Constant(), real, fake)) == 0.0
    assert float(discriminator_loss(Constant(), fake, real)) == 2.0

    class Perfect(torch.nn.Module):
        def forward(self, faces: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
            return torch.ones(faces.shape[0])

    assert float(sync_loss(Perfect(), torch.zeros(2, 16, 3, 4, 4), torch.zeros(2, 80, 64))) < 1e-5
