"""The BiSeNet parser loads files in the published 79999_iter.pth layout and parses in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.data import astronaut

from musedub.infra.errors import WeightsMismatchError
from musedub.models.face_parsing import NUM_CLASSES, PARSE_SIZE, BiSeNet, FaceParser
from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.store import ModelStore
from musedub.pipeline.face.crop_geometry import Box
from musedub.pipeline.face.parsing_mask import parser_input

# Key names and shapes of the published face-parsing.PyTorch file.
PUBLISHED_KEYS = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer4.1.bn2.running_var": (512,),
    "cp.arm16.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm32.conv.conv.weight": (128, 512, 3, 3),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "cp.conv_head16.bn.weight": (128,),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "conv_out.conv_out.weight": (NUM_CLASSES, 256, 1, 1),
    "conv_out16.conv_out.weight": (NUM_CLASSES, 64, 1, 1),
    "conv_out32.conv.conv.weight": (64, 128, 3, 3),
}


def test_module_names_follow_the_published_file() -> None:
    state = BiSeNet().state_dict()
    assert {k: tuple(state[k].shape) for k in PUBLISHED_KEYS} == PUBLISHED_KEYS
    assert not any(k.startswith("sp.") for k in state)  # the published net has no separate spatial path


def test_random_parser_loads_from_the_weights_folder_and_parses_the_astronaut(parsing_weights: WeightsLayout) -> None:
    parser = ModelStore(str(parsing_weights.root)).load_face_parser("cpu")
    square = parser_input(astronaut(), Box(100, 0, 300, 200))
    classes = parser.parse(np.stack([square, square[::-1]]))
    assert classes.shape == (2, PARSE_SIZE, PARSE_SIZE) and classes.dtype == np.uint8
    assert classes.max() < NUM_CLASSES
    assert np.array_equal(classes[1], parser.parse(square[::-1][None])[0])  # batches do not mix (eval mode)
    with pytest.raises(ValueError, match="512, 512, 3"):
        parser.parse(square[None, :256])


def test_files_without_batchnorm_counters_load_and_wrong_files_are_named(tmp_path: Path) -> None:
    state = {k: v for k, v in BiSeNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    FaceParser.from_file(tmp_path / "old.pth", torch.device("cpu"))
    del state["ffm.conv2.weight"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(WeightsMismatchError, match="ffm.conv2.weight"):
        FaceParser.from_file(tmp_path / "cut.pth", torch.device("cpu"))
