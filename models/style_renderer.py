"""The style generator's renderer: a conditional latent-diffusion UNet that paints the mouth.

It works in the sd-vae latent space the project already uses (scaled latents, 4 x 32 x 32 for a
256 crop) and never touches the VAE: latents in, latents out (models/vae.py encodes and decodes).
It predicts the noise in a noisy target latent (epsilon objective) from:

- input channels: noisy latent (4) ‖ masked latent (4: the VAE latent of the crop with its lower
  half blanked, as MuseTalk's masked input) ‖ mask (1: 1 where the mouth is generated), 9 in all;
- lip motion: one frame's 20 mouth points (the predictor's output, 40 numbers) -> a style vector
  by a small MLP; every ResBlock conv is a StyleGAN2 modulated conv: the style scales the conv
  weights per input channel, then each output channel's weights are renormalised to unit norm
  (demodulation); a grouped conv gives each sample of a batch its own weights;
- reference faces: one or more reference latents -> patch tokens with a learned position ->
  spatial cross-attention from the UNet's feature maps (the lower-resolution levels and the
  middle) to every reference's tokens; a mask lets the number of references vary in a batch;
- the diffusion timestep: sin/cos -> MLP, added inside each ResBlock.

`DDIMSampler` holds the noise schedule (stored in the renderer's config, so training and sampling
agree), the training helper (`add_noise`, `training_inputs`) and deterministic DDIM (eta 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from musedub.models.constants import RENDERER_NAME
from musedub.models.style_common import load_model, save_model, sinusoids
from musedub.models.style_predictor import MOUTH_POINTS

BETA_SCHEDULES = ("scaled_linear", "linear")


@dataclass(frozen=True)
class StyleRendererConfig:
    latent_channels: int  # 4 (sd-vae)
    latent_size: int  # 32 for a 256 crop
    channels: tuple[int, ...]  # per UNet level; each level halves the resolution
    attention: tuple[bool, ...]  # per level: cross-attention to the references after each ResBlock
    layers_per_level: int
    heads: int
    norm_groups: int
    motion_dim: int  # width of the lip-motion style vector
    reference_dim: int  # width of the reference tokens
    reference_patch: int  # reference latents are cut into patch x patch tokens
    train_steps: int  # diffusion steps of the training schedule
    beta_start: float
    beta_end: float
    beta_schedule: str  # "scaled_linear" (Stable Diffusion's) or "linear" (DDPM's)

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.attention):
            raise ValueError(f"channels {self.channels} and attention {self.attention} need one entry per level")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule {self.beta_schedule!r} is not one of {BETA_SCHEDULES}")
        if self.latent_size % (2 ** (len(self.channels) - 1)) or self.latent_size % self.reference_patch:
            raise ValueError(f"latent_size {self.latent_size} must divide by every level's stride and the patch")


# Stable Diffusion's latent schedule: 1000 steps, betas from 0.00085 to 0.012 on a sqrt scale.
SD_SCHEDULE = {"train_steps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}

# Three levels at 32, 16 and 8 latent pixels, attention at 16 and 8 (docs/STYLE.md: parameters, ms per step).
STYLE_RENDERER_CONFIG = StyleRendererConfig(
    latent_channels=4,
    latent_size=32,
    channels=(128, 256, 512),
    attention=(False, True, True),
    layers_per_level=2,
    heads=8,
    norm_groups=32,
    motion_dim=256,
    reference_dim=256,
    reference_patch=2,
    **SD_SCHEDULE,
)
TINY_STYLE_RENDERER_CONFIG = StyleRendererConfig(
    latent_channels=4,
    latent_size=32,
    channels=(16, 32),
    attention=(False, True),
    layers_per_level=1,
    heads=2,
    norm_groups=8,
    motion_dim=16,
    reference_dim=16,
    reference_patch=4,
    **SD_SCHEDULE,
)


@dataclass
class RenderConditions:
    """What a frame is rendered from; the mask and masked latent are the caller's (VAE side)."""

    masked: torch.Tensor  # (B, 4, h, w) latent of the crop with its lower half blanked
    mask: torch.Tensor  # (B, 1, h, w) 1 where the mouth is generated
    motion: torch.Tensor  # (B, 20, 2) mouth points in crop-box units (the predictor's output)
    references: torch.Tensor  # (B, N, 4, h, w) reference face latents
    reference_mask: torch.Tensor | None = None  # (B, N) True on real references; None: all real


@dataclass
class PreparedConditions:
    """RenderConditions turned into what every denoising step reads; computed once per sampling."""

    image: torch.Tensor  # (B, 5, h, w) masked latent ‖ mask
    style: torch.Tensor  # (B, motion_dim)
    tokens: torch.Tensor  # (B, N * P, reference_dim)
    ignore: torch.Tensor | None  # (B, N * P) True on padded references' tokens


def latent_mask(like: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w): 1 on the lower half, where the masked latent was blanked and the mouth is generated."""
    mask = like.new_zeros(like.shape[0], 1, *like.shape[2:])
    mask[:, :, like.shape[2] // 2 :] = 1.0
    return mask


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated conv: per-sample weights w * s (per input channel), demodulated per output channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, style_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel, kernel) / math.sqrt(in_channels * kernel**2)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(style_dim, in_channels)
        nn.init.ones_(self.affine.bias)  # scales start around 1, not 0: every input channel passes at first

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x (B, I, H, W), style (B, style_dim) -> (B, O, H, W)."""
        batch, channels, height, width = x.shape
        scales = self.affine(style)  # (B, I)
        weight = self.weight[None] * scales[:, None, :, None, None]  # (B, O, I, k, k)
        weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)  # demodulate
        out = F.conv2d(
            x.reshape(1, batch * channels, height, width),  # (1, B*I, H, W)
            weight.flatten(0, 1),  # (B*O, I, k, k)
            padding=self.weight.shape[-1] // 2,
            groups=batch,
        )  # (1, B*O, H, W)
        return out.view(batch, -1, height, width) + self.bias[:, None, None]  # (B, O, H, W)


class ResBlock(nn.Module):
    """GroupNorm ▸ SiLU ▸ modulated conv, + timestep, twice; a 1x1 conv on the skip when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int, config: StyleRendererConfig) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(config.norm_groups, in_channels)
        self.conv1 = ModulatedConv2d(in_channels, out_channels, 3, config.motion_dim)
        self.time = nn.Linear(time_dim, out_channels)
        self.norm2 = nn.GroupNorm(config.norm_groups, out_channels)
        self.conv2 = ModulatedConv2d(out_channels, out_channels, 3, config.motion_dim)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), style)
        h = h + self.time(F.silu(time))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)), style)
        return self.skip(x) + h


class ReferenceAttention(nn.Module):
    """Spatial cross-attention: every feature-map position queries the reference faces' tokens."""

    def __init__(self, channels: int, config: StyleRendererConfig) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(config.norm_groups, channels)
        self.attention = nn.MultiheadAttention(
            channels, config.heads, kdim=config.reference_dim, vdim=config.reference_dim, batch_first=True
        )

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, ignore: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W), tokens (B, N*P, reference_dim) -> x + attended (B, C, H, W)."""
        queries = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        attended = self.attention(queries, tokens, tokens, key_padding_mask=ignore, need_weights=False)[0]
        return x + attended.transpose(1, 2).view_as(x)


class ReferenceEncoder(nn.Module):
    """Reference latents (B, N, 4, h, w) -> tokens (B, N * (h/p) * (w/p), reference_dim) with positions."""

    def __init__(self, config: StyleRendererConfig) -> None:
        super().__init__()
        dim, patch = config.reference_dim, config.reference_patch
        self.conv = nn.Conv2d(config.latent_channels, dim, 3, padding=1)
        self.patches = nn.Conv2d(dim, dim, patch, stride=patch)
        self.position = nn.Parameter(torch.randn((config.latent_size // patch) ** 2, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(self, references: torch.Tensor) -> torch.Tensor:
        batch, count = references.shape[:2]
        patches = self.patches(F.silu(self.conv(references.flatten(0, 1))))  # (B*N, dim, h/p, w/p)
        tokens = patches.flatten(2).transpose(1, 2) + self.position  # (B*N, P, dim)
        return self.norm(tokens).reshape(batch, count * tokens.shape[1], -1)  # (B, N*P, dim)


class Stage(nn.Module):
    """A ResBlock, then (where the level attends) cross-attention to the references."""

    def __init__(self, in_channels: int, out_channels: int, attend: bool, time_dim: int, config: StyleRendererConfig):
        super().__init__()
        self.block = ResBlock(in_channels, out_channels, time_dim, config)
        self.attention = ReferenceAttention(out_channels, config) if attend else None

    def forward(self, h: torch.Tensor, time: torch.Tensor, prepared: PreparedConditions) -> torch.Tensor:
        h = self.block(h, time, prepared.style)
        return h if self.attention is None else self.attention(h, prepared.tokens, prepared.ignore)


class StyleRenderer(nn.Module):
    """(noisy latent, timestep, conditions) -> predicted noise (B, 4, h, w)."""

    def __init__(self, config: StyleRendererConfig) -> None:
        super().__init__()
        self.config = config
        widths, time_dim = config.channels, 4 * config.channels[0]
        self.time = nn.Sequential(nn.Linear(widths[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.motion = nn.Sequential(
            nn.Linear(2 * MOUTH_POINTS, config.motion_dim), nn.SiLU(), nn.Linear(config.motion_dim, config.motion_dim)
        )
        self.references = ReferenceEncoder(config)
        self.conv_in = nn.Conv2d(2 * config.latent_channels + 1, widths[0], 3, padding=1)  # noisy ‖ masked ‖ mask

        levels = range(len(widths))
        self.down = nn.ModuleList(nn.ModuleList() for _ in levels)  # per level: its stages
        self.downsample = nn.ModuleList()  # between levels: a strided conv
        skips, width = [widths[0]], widths[0]
        for level in levels:
            for _ in range(config.layers_per_level):
                self.down[level].append(Stage(width, widths[level], config.attention[level], time_dim, config))
                width = widths[level]
                skips.append(width)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
        self.middle = Stage(width, width, True, time_dim, config)
        self.middle_out = ResBlock(width, width, time_dim, config)
        self.up = nn.ModuleList(nn.ModuleList() for _ in levels)  # deepest level first; each stage eats a skip
        self.upsample = nn.ModuleList()
        for index, level in enumerate(reversed(levels)):
            for _ in range(config.layers_per_level + 1):
                self.up[index].append(
                    Stage(width + skips.pop(), widths[level], config.attention[level], time_dim, config)
                )
                width = widths[level]
            if level > 0:
                self.upsample.append(
                    nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(width, width, 3, padding=1))
                )
        self.norm_out = nn.GroupNorm(config.norm_groups, width)
        self.conv_out = nn.Conv2d(width, config.latent_channels, 3, padding=1)

    @classmethod
    def from_pretrained(cls, folder: Path) -> StyleRenderer:
        """Load `<folder>/renderer.json` + `renderer.safetensors` strictly."""
        return load_model(cls, StyleRendererConfig, folder, RENDERER_NAME)  # type: ignore[return-value]

    def save_pretrained(self, folder: Path) -> None:
        save_model(self, self.config, folder, RENDERER_NAME)

    def prepare(self, conditions: RenderConditions) -> PreparedConditions:
        """The per-frame conditions every step shares: style vector and reference tokens, once."""
        size, channels = self.config.latent_size, self.config.latent_channels
        if conditions.masked.shape[1:] != (channels, size, size) or conditions.mask.shape[1:] != (1, size, size):
            raise ValueError(
                f"masked latent {tuple(conditions.masked.shape)} / mask {tuple(conditions.mask.shape)} "
                f"need (B, {channels}, {size}, {size}) / (B, 1, {size}, {size})"
            )
        if conditions.motion.shape[1:] != (MOUTH_POINTS, 2):
            raise ValueError(f"motion needs (B, {MOUTH_POINTS}, 2), got {tuple(conditions.motion.shape)}")
        references = conditions.references
        if references.ndim != 5 or references.shape[2:] != (channels, size, size):
            raise ValueError(f"references need (B, N, {channels}, {size}, {size}), got {tuple(references.shape)}")
        tokens = self.references(references)  # (B, N*P, D)
        ignore = None
        if conditions.reference_mask is not None:
            if not bool(conditions.reference_mask.any(1).all()):
                raise ValueError("every sample needs at least one real reference latent")
            per_reference = tokens.shape[1] // references.shape[1]
            ignore = (~conditions.reference_mask).repeat_interleave(per_reference, dim=1)  # (B, N*P)
        return PreparedConditions(
            image=torch.cat([conditions.masked, conditions.mask.to(conditions.masked.dtype)], dim=1),
            style=self.motion(conditions.motion.flatten(1)),
            tokens=tokens,
            ignore=ignore,
        )

    def denoise(self, noisy: torch.Tensor, timesteps: torch.Tensor, prepared: PreparedConditions) -> torch.Tensor:
        """noisy (B, 4, h, w), timesteps (B,) -> predicted noise (B, 4, h, w)."""
        time = self.time(sinusoids(timesteps, self.config.channels[0]).to(noisy.dtype))  # (B, time_dim)
        h = self.conv_in(torch.cat([noisy, prepared.image], dim=1))  # (B, C0, h, w)
        skips = [h]
        for level, stages in enumerate(self.down):
            for stage in stages:
                h = stage(h, time, prepared)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)  # (B, C, h/2, w/2)
                skips.append(h)
        h = self.middle_out(self.middle(h, time, prepared), time, prepared.style)
        for level, stages in enumerate(self.up):
            for stage in stages:
                h = stage(torch.cat([h, skips.pop()], dim=1), time, prepared)  # (B, C + C_skip, ...) -> (B, C', ...)
            if level < len(self.upsample):
                h = self.upsample[level](h)  # (B, C, 2h, 2w)
        return self.conv_out(F.silu(self.norm_out(h)))

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditions: RenderConditions) -> torch.Tensor:
        return self.denoise(noisy, timesteps, self.prepare(conditions))


class DDIMSampler:
    """The renderer's noise schedule: noising for training, deterministic DDIM (eta 0) for sampling.

    Sampling timesteps are spaced "trailing" (from train_steps - 1 down), so even a few steps
    start from pure noise; the last step lands on the clean latent (alpha_bar = 1).
    """

    def __init__(self, config: StyleRendererConfig) -> None:
        self.train_steps = config.train_steps
        if config.beta_schedule == "scaled_linear":
            betas = (
                torch.linspace(config.beta_start**0.5, config.beta_end**0.5, config.train_steps, dtype=torch.float64)
                ** 2
            )
        else:
            betas = torch.linspace(config.beta_start, config.beta_end, config.train_steps, dtype=torch.float64)
        self.alpha_bar = torch.cumprod(1.0 - betas, dim=0)  # (train_steps,) float64

    def _at(self, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.alpha_bar[timesteps.cpu()].to(like.device, like.dtype)[:, None, None, None]  # (B, 1, 1, 1)

    def add_noise(self, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, per sample."""
        alpha_bar = self._at(timesteps, clean)
        return alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise

    def training_inputs(
        self, clean: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean latents (B, 4, h, w) -> (noisy, timesteps (B,), noise); the loss is
        MSE(renderer(noisy, timesteps, conditions), noise)."""
        timesteps = torch.randint(0, self.train_steps, (clean.shape[0],), generator=generator, device=clean.device)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        return self.add_noise(clean, noise, timesteps), timesteps, noise

    def timesteps(self, steps: int) -> list[int]:
        if not 1 <= steps <= self.train_steps:
            raise ValueError(f"DDIM steps must be in 1..{self.train_steps}, got {steps}")
        return [round(self.train_steps - i * self.train_steps / steps) - 1 for i in range(steps)]

    @torch.no_grad()
    def sample(
        self, renderer: StyleRenderer, conditions: RenderConditions, noise: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """Start noise (B, 4, h, w) -> clean latent (B, 4, h, w) in `steps` renderer calls; same noise, same result."""
        prepared = renderer.prepare(conditions)
        latent = noise
        schedule = self.timesteps(steps)
        for t, following in zip(schedule, [*schedule[1:], None], strict=True):
            timesteps = torch.full((noise.shape[0],), t, device=noise.device, dtype=torch.long)
            predicted = renderer.denoise(latent, timesteps, prepared)
            alpha_bar = self._at(timesteps, latent)
            clean = (latent - (1 - alpha_bar).sqrt() * predicted) / alpha_bar.sqrt()
            if following is None:  # the last step lands on alpha_bar = 1: the clean estimate itself
                return clean
            after = self._at(torch.full_like(timesteps, following), latent)
            latent = after.sqrt() * clean + (1 - after).sqrt() * predicted
        raise AssertionError("unreachable: timesteps() returns at least one step")
