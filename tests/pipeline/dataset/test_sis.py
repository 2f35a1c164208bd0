"""SIS candidate sets against a brute-force, one-frame-at-a-time computation."""

from __future__ import annotations

import numpy as np
import pytest

from musedub.pipeline.dataset.sis import INNER_MOUTH, JAW, SisSettings, candidate_sets, normalise_to_crop


def brute_force(points: np.ndarray, settings: SisSettings) -> tuple[list[list[int]], list[bool]]:
    n = len(points)
    k = settings.k(n)
    out, fallback = [], []
    for i in range(n):
        pose = [float(np.mean([np.linalg.norm(points[i, p] - points[j, p]) for p in JAW])) for j in range(n)]
        lips = [float(np.mean([np.linalg.norm(points[i, p] - points[j, p]) for p in INNER_MOUTH])) for j in range(n)]
        nearest = sorted(range(n), key=lambda j: (pose[j], j))[:k]
        farthest = sorted(range(n), key=lambda j: (-lips[j], j))[:k]
        chosen = sorted(j for j in set(nearest) & set(farthest) if abs(i - j) > settings.exclusion)
        fallback.append(not chosen)
        if not chosen:
            chosen = [j for j in range(n) if settings.exclusion < abs(i - j) <= settings.fallback_radius]
        out.append(chosen)
    return out, fallback


def synthetic_clip(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A head turning and a mouth opening at different rates, plus noise; boxes drifting."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 200, (68, 2)).astype(np.float32)
    t = np.arange(n, dtype=np.float32)
    marks = np.repeat(base[None], n, axis=0)
    marks[:, JAW, 0] += 12 * np.sin(t / 7)[:, None]
    marks[:, INNER_MOUTH, 1] += 9 * np.abs(np.sin(t / 3))[:, None]
    marks += rng.normal(0, 0.7, marks.shape).astype(np.float32)
    boxes = np.stack([10 + t // 5, 20 + t // 9, 230 + t // 5, 250 + t // 9], axis=1).astype(np.int32)
    return marks + boxes[:, None, :2], boxes


@pytest.mark.parametrize(("n", "ratio", "radius"), [(60, 0.51, 80), (97, 0.4, 12), (40, 0.1, 8)])
def test_candidate_sets_match_brute_force(n: int, ratio: float, radius: int) -> None:
    marks, boxes = synthetic_clip(n, seed=n)
    settings = SisSettings(ratio=ratio, fallback_radius=radius)
    points = normalise_to_crop(marks, boxes)
    candidates, fallback = candidate_sets(points, settings)
    expected, expected_fallback = brute_force(points, settings)
    assert [c.tolist() for c in candidates] == expected
    assert fallback.tolist() == expected_fallback
    assert all(np.all(np.abs(c - i) > settings.exclusion) for i, c in enumerate(candidates))


def test_small_k_falls_back_to_the_window() -> None:
    marks, boxes = synthetic_clip(40, seed=3)
    candidates, fallback = candidate_sets(normalise_to_crop(marks, boxes), SisSettings(ratio=0.03, fallback_radius=8))
    assert fallback.any()
    for i in np.flatnonzero(fallback):
        gaps = np.abs(candidates[i] - i)
        assert gaps.min() == 6 and gaps.max() <= 8


def test_normalise_maps_the_box_onto_the_crop() -> None:
    boxes = np.array([[100, 50, 200, 250]], np.int32)
    marks = np.array([[[100, 50], [200, 250], [150, 150]]], np.float32)
    assert np.allclose(normalise_to_crop(marks, boxes)[0], [[0, 0], [256, 256], [128, 128]])
