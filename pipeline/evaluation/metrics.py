"""The formulas of `musedub eval`: Fréchet distance (FID), CSIM, and SyncNet's LSE-D / LSE-C.

- Fréchet distance of two Gaussians fitted to feature sets (from running sums, so a set can be any size):
  |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)); the trace of the root is the sum of the square
  roots of the eigenvalues of S1^(1/2) S2 S1^(1/2) (symmetric, so no complex sqrtm is needed).
- CSIM: mean cosine similarity of identity embeddings of matching frames.
- LSE (SyncNet's offset search): for each audio shift in [-max_offset, max_offset] frames, the
  mean distance between face and audio embeddings over the windows; LSE-D is the smallest mean
  distance, LSE-C the median minus that smallest (how clearly one shift wins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FeatureStats:
    """Sums of feature vectors and of their outer products: their Gaussian, whatever the number of
    vectors, without keeping them (a film's every frame, pooled over a batch's jobs)."""

    count: int
    total: np.ndarray  # (F,) float64
    outer: np.ndarray  # (F, F) float64, sum of x x^T

    @classmethod
    def empty(cls, dim: int) -> FeatureStats:
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    def add(self, features: np.ndarray) -> None:
        """features (N, F)."""
        x = np.asarray(features, np.float64)
        self.count += len(x)
        self.total += x.sum(0)
        self.outer += x.T @ x

    def merge(self, other: FeatureStats) -> None:
        self.count += other.count
        self.total += other.total
        self.outer += other.outer

    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (F,) and unbiased covariance (F, F), as np.cov of the vectors would give."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.count}")
        mean = self.total / self.count
        return mean, (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1  # (F, F) symmetric PSD, same spectrum as S1 S2
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


def csim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of row pairs of a, b (N, E)."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).mean())


@dataclass(frozen=True)
class SyncScore:
    distance: float  # LSE-D: lower is better
    confidence: float  # LSE-C: higher is better
    offset: int  # the audio shift (frames) with the smallest mean distance


def lse_from_distances(distances: np.ndarray) -> SyncScore:
    """distances (2K + 1, W): face-audio distance of window w with the audio shifted by s - K frames."""
    means = distances.mean(axis=1)  # (2K + 1,) mean over windows per shift
    best = int(np.argmin(means))
    return SyncScore(float(means[best]), float(np.median(means) - means[best]), best - (len(means) - 1) // 2)


def lse(faces: np.ndarray, audio: np.ndarray, max_offset: int = 15) -> SyncScore:
    """faces (N, E) per window, audio (N + 2 * max_offset, E) with audio[i + max_offset] under faces[i]."""
    n = len(faces)
    if len(audio) != n + 2 * max_offset:
        raise ValueError(f"audio needs {n + 2 * max_offset} windows for {n} face windows, got {len(audio)}")
    shifted = np.stack([audio[s : s + n] for s in range(2 * max_offset + 1)])  # (2K + 1, N, E)
    return lse_from_distances(np.linalg.norm(shifted - faces[None], axis=2))
