"""The style generator's lip-motion predictor: driving audio + a speaker's reference -> mouth points.

A Transformer over the T frames of a driving window. Its style aggregation is audio-aware
(Zhong et al., "Style-Preserving Lip Sync via Audio-Aware Style Reference"): in every layer a
cross-attention takes its queries from the driving audio, its keys from the reference frames'
audio and its values from the reference frames' lip motion, so a frame borrows the mouth the
speaker made where the reference holds a similar sound.

Audio per frame is the project's whisper prompt, (50, D) = 10 whisper frames x 5 hidden states
time-major (pipeline/audio/prompts.py), before the positional encoding. It is reduced to one
vector per frame by a learned softmax mix of the 5 states (each layer-normalised first, so no
state dominates the mix by its scale), then a linear projection of the 10 mixed whisper frames
flattened: the prompt's 0.2 s of context stays, at a fifth of the flat prompt's width.
The same audio embedding serves the driving queries and the reference keys, so "similar sound"
is measured in one space. Reference frames carry no position: the lookup is by sound, not time.

Lip motion is the 20 mouth points (48..67 of the 68-point iBUG set) normalised to the face crop
box: (0, 0) its top-left corner, (1, 1) its bottom-right (`mouth_motion`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from musedub.models.constants import PREDICTOR_NAME
from musedub.models.style_common import load_model, save_model, sinusoids

MOUTH = slice(48, 68)
MOUTH_POINTS = 20


@dataclass(frozen=True)
class StylePredictorConfig:
    audio_dim: int  # whisper d_model (384 for whisper-tiny)
    audio_states: int  # hidden states per whisper frame in a prompt (embeddings + 4 layers)
    audio_frames: int  # whisper frames per video frame's prompt
    width: int
    heads: int
    layers: int
    ff_mult: int


# 5.22 M parameters: the output is 40 numbers a frame, so the width goes to attention (4 heads of 64
# in 4 layers) and the model stays small and cheap next to the renderer (66 M; docs/STYLE.md).
STYLE_PREDICTOR_CONFIG = StylePredictorConfig(
    audio_dim=384, audio_states=5, audio_frames=10, width=256, heads=4, layers=4, ff_mult=4
)
# The tiny whisper's width (64), so it runs on the tiny weights' prompts.
TINY_STYLE_PREDICTOR_CONFIG = StylePredictorConfig(
    audio_dim=64, audio_states=5, audio_frames=10, width=32, heads=2, layers=2, ff_mult=2
)


def mouth_motion(landmarks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """landmarks (..., 68, 2) in pixels, crop boxes (..., 4) as x0, y0, x1, y1 -> (..., 20, 2) in box units."""
    origin = boxes[..., None, :2]  # (..., 1, 2)
    size = boxes[..., None, 2:] - origin  # (..., 1, 2)
    return (landmarks[..., MOUTH, :] - origin) / size


def stack_references(
    windows: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample, a list of reference windows (audio (L, 50, D), lips (L, 20, 2)) of any count and length
    -> zero-padded audio (B, R, L, 50, D), lips (B, R, L, 20, 2) and mask (B, R, L), True where real."""
    if not windows or any(not sample for sample in windows):
        raise ValueError("every sample needs at least one reference window")
    count = max(len(sample) for sample in windows)
    length = max(len(audio) for sample in windows for audio, _ in sample)
    audio0, lips0 = windows[0][0]
    audio = audio0.new_zeros(len(windows), count, length, *audio0.shape[1:])
    lips = lips0.new_zeros(len(windows), count, length, *lips0.shape[1:])
    mask = torch.zeros(len(windows), count, length, dtype=torch.bool, device=audio0.device)
    for b, sample in enumerate(windows):
        for r, (window_audio, window_lips) in enumerate(sample):
            if len(window_audio) != len(window_lips):
                raise ValueError(
                    f"reference window {r} of sample {b}: {len(window_audio)} audio vs {len(window_lips)} lip frames"
                )
            audio[b, r, : len(window_audio)] = window_audio
            lips[b, r, : len(window_lips)] = window_lips
            mask[b, r, : len(window_audio)] = True
    return audio, lips, mask


class AudioFrameEmbedding(nn.Module):
    """A whisper prompt (..., 50, D) -> one vector per video frame (..., width)."""

    def __init__(self, config: StylePredictorConfig) -> None:
        super().__init__()
        self.frames, self.states, self.dim = config.audio_frames, config.audio_states, config.audio_dim
        self.mix = nn.Parameter(torch.zeros(config.audio_states))
        self.project = nn.Linear(config.audio_frames * config.audio_dim, config.width)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        if prompts.shape[-2:] != (self.frames * self.states, self.dim):
            raise ValueError(
                f"audio prompts need (..., {self.frames * self.states}, {self.dim}), got {tuple(prompts.shape)}"
            )
        states = F.layer_norm(prompts.unflatten(-2, (self.frames, self.states)), (self.dim,))  # (..., 10, 5, D)
        mixed = (states * self.mix.softmax(0)[:, None]).sum(-2)  # (..., 10, D)
        return self.project(mixed.flatten(-2))  # (..., width)


class StyleLayer(nn.Module):
    """Pre-norm: self-attention over driving time, audio-aware cross-attention to the reference, MLP."""

    def __init__(self, config: StylePredictorConfig) -> None:
        super().__init__()
        width = config.width
        self.norm_self, self.norm_cross, self.norm_mlp = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attention = nn.MultiheadAttention(width, config.heads, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(width, config.heads, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(width, config.ff_mult * width), nn.GELU(), nn.Linear(config.ff_mult * width, width)
        )

    def forward(self, h: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
        """h (B, T, W); keys = reference audio, values = reference lips (B, N, W); ignore (B, N) True on padding."""
        x = self.norm_self(h)
        h = h + self.self_attention(x, x, x, need_weights=False)[0]
        x = self.norm_cross(h)
        h = h + self.cross_attention(x, keys, values, key_padding_mask=ignore, need_weights=False)[0]
        return h + self.mlp(self.norm_mlp(h))


class StylePredictor(nn.Module):
    """(driving prompts, reference prompts + lips) -> mouth points per driving frame."""

    def __init__(self, config: StylePredictorConfig) -> None:
        super().__init__()
        self.config = config
        self.audio = AudioFrameEmbedding(config)
        self.lips = nn.Linear(2 * MOUTH_POINTS, config.width)
        self.norm_keys, self.norm_values = nn.LayerNorm(config.width), nn.LayerNorm(config.width)
        self.layers = nn.ModuleList(StyleLayer(config) for _ in range(config.layers))
        self.head = nn.Sequential(nn.LayerNorm(config.width), nn.Linear(config.width, 2 * MOUTH_POINTS))

    @classmethod
    def from_pretrained(cls, folder: Path) -> StylePredictor:
        """Load `<folder>/predictor.json` + `predictor.safetensors` strictly."""
        return load_model(cls, StylePredictorConfig, folder, PREDICTOR_NAME)  # type: ignore[return-value]

    def save_pretrained(self, folder: Path) -> None:
        save_model(self, self.config, folder, PREDICTOR_NAME)

    def forward(
        self,
        audio: torch.Tensor,
        reference_audio: torch.Tensor,
        reference_lips: torch.Tensor,
        reference_mask: torch.Tensor,
    ) -> torch.Tensor:
        """audio (B, T, 50, D); reference audio (B, R, L, 50, D), lips (B, R, L, 20, 2), mask (B, R, L)
        True on real frames (`stack_references`) -> lips (B, T, 20, 2)."""
        batch, frames = audio.shape[:2]
        if reference_mask.shape != reference_lips.shape[:3] or reference_audio.shape[:3] != reference_lips.shape[:3]:
            raise ValueError(
                f"reference audio {tuple(reference_audio.shape)}, lips {tuple(reference_lips.shape)} and "
                f"mask {tuple(reference_mask.shape)} disagree on (B, R, L)"
            )
        real = reference_mask.flatten(1)  # (B, R*L)
        if not bool(real.any(1).all()):
            raise ValueError("every sample needs at least one real reference frame")
        h = self.audio(audio) + sinusoids(torch.arange(frames, device=audio.device), self.config.width).to(audio.dtype)
        keys = self.norm_keys(self.audio(reference_audio.flatten(1, 2)))  # (B, R*L, W)
        values = self.norm_values(self.lips(reference_lips.flatten(1, 2).flatten(2)))  # (B, R*L, W)
        for layer in self.layers:
            h = layer(h, keys, values, ~real)  # (B, T, W)
        return self.head(h).view(batch, frames, MOUTH_POINTS, 2)  # (B, T, 20, 2)
