"""What the end-to-end tests measure on written videos: every decoded frame, and PSNR between two."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def decoded(path: Path | str) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
