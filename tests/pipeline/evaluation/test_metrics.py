"""Eval formulas against closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest

from musedub.pipeline.evaluation.metrics import FeatureStats, csim, frechet_distance, lse


def test_feature_stats_are_the_sets_gaussian_however_split() -> None:
    """Running sums give np.cov's Gaussian, halves merged give the whole, and one set against itself has FID 0."""
    features = np.random.default_rng(0).normal(1.0, 2.0, size=(500, 6))
    whole, first, second = FeatureStats.empty(6), FeatureStats.empty(6), FeatureStats.empty(6)
    whole.add(features)
    first.add(features[:123])
    second.add(features[123:])
    first.merge(second)
    mu, sigma = whole.gaussian()
    np.testing.assert_allclose(mu, features.mean(0))
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False))
    np.testing.assert_allclose(first.gaussian()[1], sigma)
    assert first.count == 500
    assert frechet_distance(mu, sigma, *first.gaussian()) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        FeatureStats.empty(6).gaussian()


def test_frechet_of_diagonal_gaussians_has_a_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # 5 + (1 + 1 + 4)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    assert expected == 11.0


def test_frechet_of_commuting_rotated_covariances() -> None:
    """S1 = R diag(a) R^T, S2 = R diag(b) R^T: the trace term is that of the diagonal case."""
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    s1, s2 = rotation @ np.diag(a) @ rotation.T, rotation @ np.diag(b) @ rotation.T
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(expected)


def test_csim() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert csim(a, 3 * a) == pytest.approx(1.0)
    assert csim(a, a[:, ::-1]) == pytest.approx(0.0)
    assert csim(a, -a) == pytest.approx(-1.0)


def test_lse_finds_the_shift_and_its_margin() -> None:
    rng = np.random.default_rng(2)
    n, k = 40, 15
    audio = rng.normal(size=(n + 2 * k, 8))
    faces = audio[k + 3 : k + 3 + n].copy()  # the faces follow the audio 3 windows late
    score = lse(faces, audio, k)
    assert score.offset == 3 and score.distance == pytest.approx(0.0)
    others = [np.linalg.norm(faces - audio[k + s : k + s + n], axis=1).mean() for s in range(-k, k + 1)]
    assert score.confidence == pytest.approx(np.median(others))
    with pytest.raises(ValueError):
        lse(faces, audio[:-1], k)
