"""A SyncNet for the stage-2 sync loss: lower halves of 16 frames and their log-mel, one embedding each.

The reference ships no SyncNet for its 256x256 crops, so this one is ours, trained by
`musedub train-syncnet` on the same shards. Embeddings pass a ReLU and are L2-normalised, so
their cosine similarity lies in [0, 1] and reads as P(in sync), trained with BCE.
Saved as `syncnet/syncnet.pth` (state_dict) + `syncnet/syncnet.json` (its config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from musedub.infra.errors import ConfigError
from musedub.models.checkpoint import load_strict, read_state_dict

SYNC_FRAMES = 16
MEL_BINS = 80
MEL_PER_FRAME = 4  # 100 Hz mel / 25 fps
SYNCNET_CONFIG: dict[str, Any] = {"widths": [32, 64, 128, 256, 512], "embedding": 512}
TINY_SYNCNET_CONFIG: dict[str, Any] = {"widths": [8, 8, 16, 16, 16], "embedding": 16}


def _tower(channels: int, widths: list[int], embedding: int) -> nn.Sequential:
    """Strided conv blocks down to a global average, then a 1x1 projection."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, embedding, 1), nn.ReLU()]
    return nn.Sequential(*layers)


class SyncNet(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.face = _tower(3 * SYNC_FRAMES, list(config["widths"]), int(config["embedding"]))
        self.audio = _tower(1, list(config["widths"]), int(config["embedding"]))

    @classmethod
    def from_pretrained(cls, folder: Path) -> SyncNet:
        config_path = folder / "syncnet.json"
        if not config_path.is_file():
            raise ConfigError(
                f"SyncNet folder {folder} has no syncnet.json: train one with `musedub train-syncnet` "
                "or write a random one with `musedub weights init-random --training`"
            )
        model = cls(json.loads(config_path.read_text()))
        load_strict(model, read_state_dict(folder / "syncnet.pth"), str(folder / "syncnet.pth"), "use its syncnet.json")
        return model.eval()

    def save_pretrained(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "syncnet.json").write_text(json.dumps(self.config, indent=2) + "\n")
        torch.save({k: v.contiguous() for k, v in self.state_dict().items()}, folder / "syncnet.pth")

    def embed_faces(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 16, 3, H, W) in [-1, 1], the lower half of each crop -> (B, E) unit vectors."""
        stacked = frames.flatten(1, 2)  # (B, 48, H, W)
        return F.normalize(self.face(stacked).flatten(1), dim=1, eps=1e-6)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, 80, 64) log-mel of the same 16 frames -> (B, E) unit vectors."""
        return F.normalize(self.audio(mel[:, None]).flatten(1), dim=1, eps=1e-6)

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Cosine similarity in [0, 1], (B,)."""
        return (self.embed_faces(frames) * self.embed_audio(mel)).sum(1)
