"""MuseTalk's generator: a diffusers UNet2DConditionModel run once at timestep 0.

The published checkpoints (`musetalkV15/unet.pth`, `musetalk/pytorch_model.bin`) are plain
state_dicts of that UNet, so the UNet is held as `self.unet` and saved/loaded without a prefix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from musedub.infra.errors import ConfigError
from musedub.models.checkpoint import load_strict, read_state_dict

# The published musetalk.json (v1.0 and v1.5 share it); 849.95 M parameters.
MUSETALK_UNET_CONFIG: dict[str, Any] = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 8,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# Same classes, diffusers-test-sized: runs in milliseconds on a CPU.
TINY_UNET_CONFIG: dict[str, Any] = {
    **MUSETALK_UNET_CONFIG,
    "block_out_channels": [32, 64],
    "cross_attention_dim": 64,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "layers_per_block": 1,
    "sample_size": 32,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}

LATENT_CHANNELS = 4


class AudioPositionalEncoding(nn.Module):
    """The standard sin/cos table added to the 50 audio tokens before cross-attention.

    The reference adds it at inference and forgot it in v1.5 training; here both call this.
    """

    def __init__(self, dim: int, max_len: int = 5000) -> None:
        super().__init__()
        # Built on the CPU explicitly so that a model constructed on the meta device still has it.
        position = torch.arange(max_len, dtype=torch.float32, device="cpu")[:, None]  # (L, 1)
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device="cpu") * (-math.log(10000.0) / dim))
        table = torch.zeros(max_len, dim, device="cpu")
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div)
        self.register_buffer("table", table, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, D) -> tokens + table[:T]."""
        return tokens + self.table[: tokens.shape[1]].to(device=tokens.device, dtype=tokens.dtype)


def read_unet_config(path: Path) -> dict[str, Any]:
    """Read and check a musetalk.json; wrong files fail here, not deep inside diffusers."""
    if not path.is_file():
        raise ConfigError(f"UNet config {path} is missing: it ships beside the UNet weights as musetalk.json")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"UNet config {path} is not valid JSON ({exc}): restore the published musetalk.json"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"UNet config {path} is not a JSON object: restore the published musetalk.json")
    expected = {"in_channels": 2 * LATENT_CHANNELS, "out_channels": LATENT_CHANNELS}
    for key, value in expected.items():
        if config.get(key) != value:
            raise ConfigError(f"UNet config {path} has {key}={config.get(key)!r}; MuseTalk needs {value}")
    if not isinstance(config.get("cross_attention_dim"), int):
        raise ConfigError(f"UNet config {path} needs an integer cross_attention_dim (the audio feature size)")
    return config


class MuseTalkUNet(nn.Module):
    """(masked ‖ reference latents, audio prompts) -> clean latent of the target face, one step."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.unet = UNet2DConditionModel.from_config(self.config)
        self.audio_dim = int(self.config["cross_attention_dim"])
        self.position = AudioPositionalEncoding(self.audio_dim)

    @classmethod
    def from_pretrained(cls, config_path: Path, weights_path: Path) -> MuseTalkUNet:
        """Build from musetalk.json and load unet.pth / pytorch_model.bin / *.safetensors strictly."""
        config = read_unet_config(config_path)
        state = read_state_dict(weights_path)
        try:
            with torch.device("meta"):
                model = cls(config)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # diffusers' own checks
            raise ConfigError(
                f"UNet config {config_path} does not describe a UNet ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}): restore the published musetalk.json"
            ) from None
        load_strict(
            model.unet,
            state,
            source=str(weights_path),
            hint=f"use the musetalk.json published with these weights (read {config_path})",
        )
        return model.eval()

    def save_pretrained(self, config_path: Path, weights_path: Path) -> None:
        """Write the published layout: musetalk.json + a plain UNet state_dict."""
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        state = {k: v.contiguous() for k, v in self.unet.state_dict().items()}
        if weights_path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(weights_path))
        else:
            torch.save(state, weights_path)

    def forward(self, latents: torch.Tensor, audio_prompts: torch.Tensor) -> torch.Tensor:
        """latents (B, 8, h, w), audio_prompts (B, 50, D) without position -> (B, 4, h, w)."""
        if latents.shape[1] != 2 * LATENT_CHANNELS:
            raise ValueError(f"latents need {2 * LATENT_CHANNELS} channels (masked ‖ reference), got {latents.shape}")
        if audio_prompts.shape[-1] != self.audio_dim:
            raise ValueError(f"audio prompts need width {self.audio_dim}, got {tuple(audio_prompts.shape)}")
        tokens = self.position(audio_prompts.to(latents.dtype))
        return self.unet(latents, 0, encoder_hidden_states=tokens).sample
