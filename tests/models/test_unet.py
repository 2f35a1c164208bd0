"""The MuseTalk UNet: exact published architecture, strict loading, positional encoding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from musedub.infra.errors import ConfigError, WeightsMismatchError
from musedub.models.unet import MUSETALK_UNET_CONFIG, TINY_UNET_CONFIG, AudioPositionalEncoding, MuseTalkUNet


def test_full_size_unet_matches_published_architecture() -> None:
    with torch.device("meta"):
        model = MuseTalkUNet(MUSETALK_UNET_CONFIG)
    state = model.unet.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 849_947_844  # 849.95 M in the reference
    assert len(state) == 686
    expected_shapes = {
        "conv_in.weight": (320, 8, 3, 3),
        "conv_out.weight": (4, 320, 3, 3),
        "time_embedding.linear_1.weight": (1280, 320),
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": (320, 384),
        "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_v.weight": (1280, 384),
        "mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight": (1280, 1280),
        "mid_block.attentions.0.proj_in.weight": (1280, 1280, 1, 1),
        "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0.weight": (320, 320),
        "up_blocks.0.resnets.2.conv1.weight": (1280, 2560, 3, 3),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("unet.") for k in state)


@pytest.fixture()
def tiny_unet() -> MuseTalkUNet:
    torch.manual_seed(0)
    return MuseTalkUNet(TINY_UNET_CONFIG).eval()


@pytest.mark.parametrize("name", ["unet.pth", "pytorch_model.bin", "unet.safetensors"])
def test_strict_round_trip_gives_identical_outputs(tmp_path: Path, tiny_unet: MuseTalkUNet, name: str) -> None:
    config, weights = tmp_path / "musetalk.json", tmp_path / name
    tiny_unet.save_pretrained(config, weights)
    loaded = MuseTalkUNet.from_pretrained(config, weights)
    latents, audio = torch.randn(2, 8, 32, 32), torch.randn(2, 50, 64)
    with torch.inference_mode():
        assert torch.equal(tiny_unet(latents, audio), loaded(latents, audio))
        assert loaded(latents, audio).shape == (2, 4, 32, 32)


def test_published_file_is_a_plain_unet_state_dict(tmp_path: Path, tiny_unet: MuseTalkUNet) -> None:
    tiny_unet.save_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")
    state = torch.load(tmp_path / "unet.pth", weights_only=True)
    assert set(state) == set(tiny_unet.unet.state_dict())
    assert json.loads((tmp_path / "musetalk.json").read_text())["cross_attention_dim"] == 64


def test_wrong_checkpoint_names_missing_unexpected_and_shapes(tmp_path: Path, tiny_unet: MuseTalkUNet) -> None:
    tiny_unet.save_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")
    state = torch.load(tmp_path / "unet.pth", weights_only=True)
    del state["conv_out.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["conv_in.weight"] = torch.zeros(32, 4, 3, 3)
    torch.save(state, tmp_path / "unet.pth")
    with pytest.raises(WeightsMismatchError) as info:
        MuseTalkUNet.from_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")
    message = str(info.value)
    assert "1 missing key(s) (conv_out.bias)" in message
    assert "1 unexpected key(s) (extra.weight)" in message
    assert "conv_in.weight: file (32, 4, 3, 3) vs model (32, 8, 3, 3)" in message
    assert "\n" not in message


def test_full_size_config_with_tiny_weights_is_refused(tmp_path: Path, tiny_unet: MuseTalkUNet) -> None:
    tiny_unet.save_pretrained(tmp_path / "tiny.json", tmp_path / "unet.pth")
    (tmp_path / "musetalk.json").write_text(json.dumps(MUSETALK_UNET_CONFIG))
    with pytest.raises(
        WeightsMismatchError,
        match=r"shape\(s\) differ .*conv_in.weight: file \(32, 8, 3, 3\) vs model \(320, 8, 3, 3\)",
    ):
        MuseTalkUNet.from_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({**TINY_UNET_CONFIG, "in_channels": 4}), "in_channels=4; MuseTalk needs 8"),
        (json.dumps({**TINY_UNET_CONFIG, "cross_attention_dim": None}), "integer cross_attention_dim"),
        (
            json.dumps({**TINY_UNET_CONFIG, "down_block_types": ["NoSuchBlock2D"] * 2}),
            "does not describe a UNet .*NoSuchBlock2D",
        ),
    ],
)
def test_wrong_config_is_a_clear_error(tmp_path: Path, tiny_unet: MuseTalkUNet, content: str, match: str) -> None:
    tiny_unet.save_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")
    (tmp_path / "musetalk.json").write_text(content)
    with pytest.raises(ConfigError, match=match):
        MuseTalkUNet.from_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")


def test_missing_or_corrupt_weight_files_are_clear_errors(tmp_path: Path, tiny_unet: MuseTalkUNet) -> None:
    tiny_unet.save_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")
    with pytest.raises(ConfigError, match="missing: run `musedub weights download"):
        MuseTalkUNet.from_pretrained(tmp_path / "musetalk.json", tmp_path / "absent.pth")
    (tmp_path / "unet.pth").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ConfigError, match="cannot be read"):
        MuseTalkUNet.from_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")
    torch.save({"weights": [1, 2, 3]}, tmp_path / "unet.pth")
    with pytest.raises(ConfigError, match="not a plain state_dict"):
        MuseTalkUNet.from_pretrained(tmp_path / "musetalk.json", tmp_path / "unet.pth")
    with pytest.raises(ConfigError, match="musetalk.json"):
        MuseTalkUNet.from_pretrained(tmp_path / "nope.json", tmp_path / "unet.pth")


def test_positional_encoding_matches_closed_form() -> None:
    dim, length = 384, 50
    encoding = AudioPositionalEncoding(dim)
    table = encoding(torch.zeros(1, length, dim))[0]
    for pos in (0, 1, 7, 49):
        for i in (0, 1, 100, 191):
            angle = pos / 10000 ** (2 * i / dim)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)
    tokens = torch.randn(3, length, dim)
    assert torch.allclose(encoding(tokens) - tokens, table.expand(3, -1, -1), atol=1e-6)


def test_unet_applies_positional_encoding(tiny_unet: MuseTalkUNet) -> None:
    latents, audio = torch.randn(1, 8, 32, 32), torch.randn(1, 50, 64)
    with torch.inference_mode():
        with_pe = tiny_unet(latents, audio)
        direct = tiny_unet.unet(latents, 0, encoder_hidden_states=tiny_unet.position(audio)).sample
        without = tiny_unet.unet(latents, 0, encoder_hidden_states=audio).sample
    assert torch.equal(with_pe, direct)
    assert not torch.allclose(with_pe, without)
