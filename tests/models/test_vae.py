"""The crop autoencoder: sd-vae-ft-mse sizes, deterministic masked/reference latents, uint8 faces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from skimage.data import astronaut

from musedub.infra.errors import ConfigError
from musedub.models.vae import SD_VAE_CONFIG, TINY_VAE_CONFIG, CropAutoencoder, mask_lower_half
from musedub.models.weights.layout import WeightsLayout


def face_crops(count: int) -> torch.Tensor:
    """The astronaut's face, resized to 256x256, shifted a little per crop: (count, 256, 256, 3)."""
    import cv2

    face = astronaut()[20:220, 150:350]  # (200, 200, 3) RGB: the face
    crops = [
        cv2.resize(np.roll(face, 3 * i, axis=1), (256, 256), interpolation=cv2.INTER_LANCZOS4) for i in range(count)
    ]
    return torch.from_numpy(np.stack(crops))


def test_full_size_vae_matches_sd_vae_ft_mse() -> None:
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(SD_VAE_CONFIG)
    count = lambda *mods: sum(p.numel() for m in mods for p in m.parameters())  # noqa: E731
    assert count(vae) == 83_653_863
    assert count(vae.encoder, vae.quant_conv) == 34_163_664
    assert count(vae.decoder, vae.post_quant_conv) == 49_490_199
    assert vae.config.scaling_factor == 0.18215


def test_mask_zeroes_rows_128_and_below() -> None:
    images = torch.rand(2, 3, 256, 256) * 2 - 1
    masked = mask_lower_half(images)
    assert torch.all(masked[:, :, 128:] == -1.0)
    assert torch.equal(masked[:, :, :128], images[:, :, :128])


def test_unet_input_is_masked_then_reference_and_deterministic(tiny_weights: WeightsLayout) -> None:
    vae = CropAutoencoder.from_pretrained(tiny_weights.vae)
    targets, references = face_crops(2), face_crops(2).flip(0)
    with torch.inference_mode():
        first = vae.unet_input(targets, references)
        again = vae.unet_input(targets, references)
        unit = vae.to_unit(targets)
        masked_alone = vae.encode(mask_lower_half(unit))
        reference_alone = vae.encode(vae.to_unit(references))
    assert first.shape == (2, 8, 32, 32)
    assert torch.equal(first, again)  # posterior mean, never a sample
    assert torch.allclose(first[:, :4], masked_alone, atol=1e-5)
    assert torch.allclose(first[:, 4:], reference_alone, atol=1e-5)
    assert unit.min() >= -1 and unit.max() <= 1


def test_decode_gives_uint8_rgb_crops(tiny_weights: WeightsLayout) -> None:
    vae = CropAutoencoder.from_pretrained(tiny_weights.vae)
    with torch.inference_mode():
        crops = vae.decode(torch.randn(3, 4, 32, 32))
    assert crops.dtype == torch.uint8 and crops.shape == (3, 256, 256, 3)


def test_rejects_float_crops(tiny_weights: WeightsLayout) -> None:
    vae = CropAutoencoder.from_pretrained(tiny_weights.vae)
    with pytest.raises(ValueError, match="uint8"):
        vae.unet_input(torch.zeros(1, 256, 256, 3), torch.zeros(1, 256, 256, 3))


def test_loads_2022_attention_key_names(tmp_path: Path, tiny_weights: WeightsLayout) -> None:
    """Early diffusers files (as sd-vae-ft-mse was first published) name attention query/key/value/proj_attn."""
    original = CropAutoencoder.from_pretrained(tiny_weights.vae)
    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old = {}
    for key, value in original.vae.state_dict().items():
        match = re.match(r"(.*attentions\.\d+)\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$", key)
        old[f"{match[1]}.{renames[match[2]]}.{match[3]}" if match else key] = value
    assert any(".query." in k for k in old)
    folder = tmp_path / "sd-vae"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_weights.vae / "config.json").read_text())
    torch.save(old, folder / "diffusion_pytorch_model.bin")
    loaded = CropAutoencoder.from_pretrained(folder)
    latents = torch.randn(1, 4, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded.decode(latents), original.decode(latents))


def test_missing_or_mismatched_vae_is_a_clear_error(tmp_path: Path, tiny_weights: WeightsLayout) -> None:
    with pytest.raises(ConfigError, match="has no config.json"):
        CropAutoencoder.from_pretrained(tmp_path)
    folder = tmp_path / "sd-vae"
    folder.mkdir()
    config = json.loads((tiny_weights.vae / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "block_out_channels": [16, 16, 16, 16]}))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(
        (tiny_weights.vae / "diffusion_pytorch_model.safetensors").read_bytes()
    )
    with pytest.raises(ConfigError, match="VAE"):
        CropAutoencoder.from_pretrained(folder)


def test_tiny_vae_keeps_the_real_latent_geometry() -> None:
    assert len(TINY_VAE_CONFIG["block_out_channels"]) == len(SD_VAE_CONFIG["block_out_channels"])
