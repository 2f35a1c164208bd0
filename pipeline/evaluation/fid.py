"""The network whose features FID compares: Inception-v3 (as papers report FID) or VGG19 (our former choice)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from musedub.models.inception import FIDInception
from musedub.models.vgg19 import VGG19Features
from musedub.models.weights.layout import WeightsLayout

FidNetwork = Literal["inception", "vgg"]
FID_NETWORKS: dict[str, str] = {
    "inception": "Inception-v3 pool3, 2048-d (pytorch-fid's port of TF's 2015-12-05 graph, as published FIDs)",
    "vgg": "VGG19 relu5_1 averaged over space, 512-d (ImageNet weights; not comparable with published FIDs)",
}
FEATURE_BATCH = 32  # crops per forward pass


class FidFeatures:
    """uint8 RGB crops (k, H, W, 3) -> float32 features (k, dim) of the chosen network, in batches."""

    def __init__(self, network: FidNetwork, layout: WeightsLayout) -> None:
        self.network = network
        if network == "inception":
            self._model: torch.nn.Module = FIDInception.from_file(layout.inception)
        else:
            self._model = VGG19Features.from_file(layout.vgg19)

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(crops), FEATURE_BATCH):
            images = torch.from_numpy(crops[i : i + FEATURE_BATCH]).permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
            if self.network == "inception":
                out.append(self._model(images).numpy())  # (B, 2048) pool3; resized to 299 inside
            else:
                out.append(self._model(images)[-1].mean(dim=(2, 3)).numpy())  # (B, 512) relu5_1 averaged
        return np.concatenate(out).astype(np.float32)
