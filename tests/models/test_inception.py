"""The FID Inception: the published file's keys and shapes, the TF-specific pools, input handling, strict loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from musedub.infra.errors import ConfigError, WeightsMismatchError
from musedub.models.inception import TINY_INCEPTION_CONFIG, FIDInception, InceptionConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # as eval's actors run (map_items)

Conv = tuple[str, int, int, int, int]  # module, out channels, in channels, kernel height, kernel width


def _a(name: str, cin: int, pool: int) -> list[Conv]:
    return [
        (f"{name}.branch1x1", 64, cin, 1, 1),
        (f"{name}.branch5x5_1", 48, cin, 1, 1),
        (f"{name}.branch5x5_2", 64, 48, 5, 5),
        (f"{name}.branch3x3dbl_1", 64, cin, 1, 1),
        (f"{name}.branch3x3dbl_2", 96, 64, 3, 3),
        (f"{name}.branch3x3dbl_3", 96, 96, 3, 3),
        (f"{name}.branch_pool", pool, cin, 1, 1),
    ]


def _c(name: str, c7: int) -> list[Conv]:
    return [
        (f"{name}.branch1x1", 192, 768, 1, 1),
        (f"{name}.branch7x7_1", c7, 768, 1, 1),
        (f"{name}.branch7x7_2", c7, c7, 1, 7),
        (f"{name}.branch7x7_3", 192, c7, 7, 1),
        (f"{name}.branch7x7dbl_1", c7, 768, 1, 1),
        (f"{name}.branch7x7dbl_2", c7, c7, 7, 1),
        (f"{name}.branch7x7dbl_3", c7, c7, 1, 7),
        (f"{name}.branch7x7dbl_4", c7, c7, 7, 1),
        (f"{name}.branch7x7dbl_5", 192, c7, 1, 7),
        (f"{name}.branch_pool", 192, 768, 1, 1),
    ]


def _e(name: str, cin: int) -> list[Conv]:
    return [
        (f"{name}.branch1x1", 320, cin, 1, 1),
        (f"{name}.branch3x3_1", 384, cin, 1, 1),
        (f"{name}.branch3x3_2a", 384, 384, 1, 3),
        (f"{name}.branch3x3_2b", 384, 384, 3, 1),
        (f"{name}.branch3x3dbl_1", 448, cin, 1, 1),
        (f"{name}.branch3x3dbl_2", 384, 448, 3, 3),
        (f"{name}.branch3x3dbl_3a", 384, 384, 1, 3),
        (f"{name}.branch3x3dbl_3b", 384, 384, 3, 1),
        (f"{name}.branch_pool", 192, cin, 1, 1),
    ]


# Every convolution of pytorch-fid's FID Inception (torchvision's Inception3 without AuxLogits, its
# Mixed_5b..5d/6b..6e/7b/7c swapped for the FIDInceptionA/C/E variants), written down from the layer
# definitions of pytorch-fid's src/pytorch_fid/inception.py and torchvision's models/inception.py.
# The file itself cannot be downloaded here: this table is the published key list as data.
PUBLISHED_CONVS: list[Conv] = [
    ("Conv2d_1a_3x3", 32, 3, 3, 3),
    ("Conv2d_2a_3x3", 32, 32, 3, 3),
    ("Conv2d_2b_3x3", 64, 32, 3, 3),
    ("Conv2d_3b_1x1", 80, 64, 1, 1),
    ("Conv2d_4a_3x3", 192, 80, 3, 3),
    *_a("Mixed_5b", 192, 32),
    *_a("Mixed_5c", 256, 64),
    *_a("Mixed_5d", 288, 64),
    ("Mixed_6a.branch3x3", 384, 288, 3, 3),
    ("Mixed_6a.branch3x3dbl_1", 64, 288, 1, 1),
    ("Mixed_6a.branch3x3dbl_2", 96, 64, 3, 3),
    ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3),
    *_c("Mixed_6b", 128),
    *_c("Mixed_6c", 160),
    *_c("Mixed_6d", 160),
    *_c("Mixed_6e", 192),
    ("Mixed_7a.branch3x3_1", 192, 768, 1, 1),
    ("Mixed_7a.branch3x3_2", 320, 192, 3, 3),
    ("Mixed_7a.branch7x7x3_1", 192, 768, 1, 1),
    ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
    ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1),
    ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3),
    *_e("Mixed_7b", 1280),
    *_e("Mixed_7c", 2048),
]


def published_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of `pt_inception-2015-12-05-6726825d.pth`: per convolution a bias-free conv and a
    batch norm with its counter (pytorch-fid issue #34 quotes the file's `*.bn.num_batches_tracked` keys),
    then the 1008-way classifier."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, out, cin, kh, kw in PUBLISHED_CONVS:
        shapes[f"{name}.conv.weight"] = (out, cin, kh, kw)
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{part}"] = (out,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["fc.weight"], shapes["fc.bias"] = (1008, 2048), (1008,)
    return shapes


def test_full_size_module_has_the_published_keys_and_shapes() -> None:
    with torch.device("meta"):
        model = FIDInception()
    assert len(PUBLISHED_CONVS) == 94
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == published_shapes()
    # torchvision lists 27,161,264 parameters for Inception3 with its 3,326,696-parameter AuxLogits
    # head and 1000 classes; without the head and with 1008 classes that is 23,850,960.
    assert sum(p.numel() for p in model.parameters()) == 27_161_264 - 3_326_696 + 8 * 2049


def _branch_pool_input(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    block.branch_pool.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    block(x)
    return seen[0]


@torch.inference_mode()
def test_pools_are_tf_s() -> None:
    """Average pools ignore the padding (a constant stays constant at the border); the last block max-pools."""
    model = FIDInception.random(TINY_INCEPTION_CONFIG)
    ones = torch.ones(1, 12, 9, 9)  # Mixed_5b's input width at divisor 16
    assert torch.equal(_branch_pool_input(model.Mixed_5b, ones), ones)
    spike = torch.zeros(1, 128, 8, 8)  # Mixed_7c's input width
    spike[0, :, 4, 4] = 9.0
    assert torch.equal(_branch_pool_input(model.Mixed_7c, spike)[0, :, 3:6, 3:6], torch.full((128, 3, 3), 9.0))
    averaged = _branch_pool_input(model.Mixed_7b, torch.ones(1, 80, 8, 8))
    assert torch.equal(averaged, torch.ones(1, 80, 8, 8))


@torch.inference_mode()
def test_any_input_size_is_resized_to_299() -> None:
    model = FIDInception.random(TINY_INCEPTION_CONFIG)
    images = torch.rand(2, 3, 120, 90)
    features = model(images)
    assert features.shape == (2, TINY_INCEPTION_CONFIG.features) and bool(features.isfinite().all())
    resized = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.allclose(model(resized), features)
    assert not torch.allclose(features[0], features[1])


def test_strict_loading_round_trip_and_errors_name_the_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FIDInception.random(TINY_INCEPTION_CONFIG)
    state = model.state_dict()
    torch.save(state, tmp_path / "fid.pth")
    loaded = FIDInception.from_file(tmp_path / "fid.pth")
    assert loaded.config == InceptionConfig(width_divisor=16, logits=10)
    image = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(image), model(image))
    torch.save({k: v for k, v in state.items() if k != "Mixed_6e.branch_pool.bn.running_var"}, tmp_path / "short.pth")
    with pytest.raises(WeightsMismatchError, match=r"short\.pth .*1 missing key\(s\) \(Mixed_6e\.branch_pool\.bn"):
        FIDInception.from_file(tmp_path / "short.pth")
    torch.save({**state, "AuxLogits.fc.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(WeightsMismatchError, match=r"extra\.pth .*1 unexpected key\(s\) \(AuxLogits\.fc\.weight"):
        FIDInception.from_file(tmp_path / "extra.pth")
    with pytest.raises(ConfigError, match=r"missing\.pth are missing: run `musedub weights download"):
        FIDInception.from_file(tmp_path / "missing.pth")
