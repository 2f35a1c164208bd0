"""sd-vae-ft-mse around 256x256 face crops: masked/reference latents in, uint8 faces out.

Encoding takes the posterior mean (deterministic), not a sample as the reference's inference
does, so the same crop always gives the same latent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from torch import nn

from musedub.infra.errors import ConfigError, WeightsMismatchError

# The sd-vae-ft-mse architecture (83.65 M parameters).
SD_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# Same downsampling factor (256 -> 32) with 8-wide blocks: the pipeline's shapes stay real.
TINY_VAE_CONFIG: dict[str, Any] = {
    **SD_VAE_CONFIG,
    "block_out_channels": [8, 8, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 8,
}


def mask_lower_half(images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) in [-1, 1] -> copy with rows H/2.. set to -1 (0 before normalising)."""
    masked = images.clone()
    masked[:, :, images.shape[2] // 2 :, :] = -1.0
    return masked


class CropAutoencoder(nn.Module):
    """Maps uint8 RGB crops (B, 256, 256, 3) to UNet inputs and latents back to crops."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae
        self.scaling = float(vae.config.scaling_factor)

    @classmethod
    def from_pretrained(cls, folder: Path) -> CropAutoencoder:
        """Load a diffusers-format folder (config.json + diffusion_pytorch_model.*) strictly."""
        if not (folder / "config.json").is_file():
            raise ConfigError(f"VAE folder {folder} has no config.json: it must hold the sd-vae-ft-mse release")
        try:
            vae, info = AutoencoderKL.from_pretrained(str(folder), output_loading_info=True, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0][:300]
            raise ConfigError(f"VAE folder {folder} cannot be loaded ({reason}): re-download sd-vae-ft-mse") from None
        differs = {k: v for k, v in info.items() if k != "error_msgs" and v}
        if differs:
            raise WeightsMismatchError(f"VAE weights in {folder} do not fit its config.json: {differs}")
        return cls(vae).eval()

    def to_unit(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
        if crops.dtype != torch.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"crops must be uint8 (B, H, W, 3), got {crops.dtype} {tuple(crops.shape)}")
        param = next(self.vae.parameters())
        images = crops.to(param.device).permute(0, 3, 1, 2).to(param.dtype)  # (B, 3, H, W)
        return images / 127.5 - 1.0

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, 256, 256) in [-1, 1] -> scaled posterior means (B, 4, 32, 32)."""
        return self.vae.encode(images).latent_dist.mean * self.scaling

    def unet_input(self, targets: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """uint8 crops (B, 256, 256, 3) x2 -> (B, 8, 32, 32): latent(masked target) ‖ latent(reference)."""
        masked = mask_lower_half(self.to_unit(targets))
        both = self.encode(torch.cat([masked, self.to_unit(references)]))  # (2B, 4, 32, 32)
        masked_latents, reference_latents = both.chunk(2)
        return torch.cat([masked_latents, reference_latents], dim=1)

    def decode_unit(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, 4, 32, 32) -> float (B, 3, 256, 256) in ~[-1, 1], differentiable (training)."""
        return self.vae.decode(latents / self.scaling).sample

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, 4, 32, 32) -> uint8 RGB crops (B, 256, 256, 3)."""
        images = self.decode_unit(latents)  # (B, 3, 256, 256) in ~[-1, 1]
        images = ((images / 2 + 0.5).clamp(0, 1) * 255).round()
        return images.to(torch.uint8).permute(0, 2, 3, 1)
