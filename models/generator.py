"""VAE encode ▸ UNet ▸ VAE decode fused in one module, so latents never leave the device."""

from __future__ import annotations

import torch
from torch import nn

from musedub.models.unet import MuseTalkUNet
from musedub.models.vae import CropAutoencoder


class MuseTalkGenerator(nn.Module):
    """(target crop, reference crop, audio prompt) -> the target crop with a regenerated lower half."""

    def __init__(self, vae: CropAutoencoder, unet: MuseTalkUNet) -> None:
        super().__init__()
        self.vae = vae
        self.unet = unet

    @torch.inference_mode()
    def forward(self, targets: torch.Tensor, references: torch.Tensor, audio_prompts: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 256, 256, 3) x2, float (B, 50, D) -> uint8 (B, 256, 256, 3)."""
        if not targets.shape[0] == references.shape[0] == audio_prompts.shape[0]:
            raise ValueError(
                f"batch sizes differ: targets {targets.shape[0]}, references {references.shape[0]}, "
                f"audio {audio_prompts.shape[0]}"
            )
        latents = self.vae.unet_input(targets, references)  # (B, 8, 32, 32)
        audio = audio_prompts.to(device=latents.device, dtype=latents.dtype)
        return self.vae.decode(self.unet(latents, audio))  # (B, 256, 256, 3)

    def compile_static(self, mode: str = "default") -> None:
        """torch.compile the VAE's encoder and decoder and the UNet, one graph per batch shape.

        Those are what `forward` reaches (CropAutoencoder's helpers, not its own forward). The
        first call per shape compiles (about 80 s on an H200); callers keep one batch shape.
        `mode` is torch.compile's: "reduce-overhead" also captures CUDA graphs, which torch keeps
        per calling thread, so only a caller that runs the model from one thread should ask for it.
        """
        inner = self.vae.vae
        inner.encoder = torch.compile(inner.encoder, dynamic=False, mode=mode)
        inner.decoder = torch.compile(inner.decoder, dynamic=False, mode=mode)
        self.unet = torch.compile(self.unet, dynamic=False, mode=mode)
