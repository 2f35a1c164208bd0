"""Voice activity on real speech: the pauses it finds are where the silence was put."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from musedub.pipeline.audio.voicing import FrameLevels, frame_energy, rest_mask, runs, voiced_frames

FPS = Fraction(25)


def test_a_pause_in_real_speech_is_a_rest_and_short_gaps_are_not(speech: np.ndarray) -> None:
    pause = np.zeros(int(0.6 * 16000), np.float32)  # frames 50-65 at 25 fps
    samples = np.concatenate([speech[:32000], pause, speech[32000:64000]])
    frames = len(samples) * 25 // 16000
    level = frame_energy(samples, 16000, FPS, frames)
    rests = [(a, b) for a, b, silent in runs(rest_mask(level, FPS)) if silent]
    assert any(a <= 51 and b >= 64 for a, b in rests), rests  # the 0.6 s pause, to a frame
    assert all(b - a >= round(0.3 * 25) for a, b in rests)  # nothing shorter than 0.3 s rests
    voiced = voiced_frames(level)
    assert voiced[:50].mean() > 0.6 and voiced[66:].mean() > 0.6  # speech is voiced


def test_all_silence_rests_everywhere_and_the_level_has_a_floor() -> None:
    level = frame_energy(np.zeros(16000, np.float32), 16000, FPS, 25)
    assert np.all(level == -100.0)
    assert rest_mask(level, FPS).all()


def test_frame_energy_follows_frames_at_a_fractional_rate() -> None:
    """At 29.97 fps a frame covers 533.87 samples: a tone in frames 10-20 only is loud there only."""
    fps = Fraction(30000, 1001)
    samples = np.zeros(16000, np.float32)
    edges = [round(Fraction(i) * 16000 / fps) for i in (10, 20)]
    samples[edges[0] : edges[1]] = 0.5
    level = frame_energy(samples, 16000, fps, 29)
    assert np.all(level[10:20] > -7) and np.all(level[:10] == -100.0) and np.all(level[20:] == -100.0)


def test_levels_fed_in_pieces_equal_the_rms_of_each_frame(speech: np.ndarray) -> None:
    """Planning measures a film's dub audio as it decodes (FrameLevels) instead of holding it:
    pieces of any size give each frame's own RMS, frames counted from an offset, halves rounded
    to even as Python's round does."""
    fps, first = Fraction(24000, 1001), 7
    levels = FrameLevels(16000, fps, first)
    cuts = np.cumsum(np.random.default_rng(0).integers(1, 3000, 200))
    for piece in np.split(speech, cuts[cuts < len(speech)]):
        levels.add(piece)
    assert levels.samples == len(speech)  # what planning sizes the dub by, last partial second included
    frames = int(len(speech) * fps / 16000) + 3  # the last frames lie past the audio
    edges = [round(Fraction(first + i) * 16000 / fps) - round(Fraction(first) * 16000 / fps) for i in range(frames + 1)]
    for i, level in enumerate(levels.levels(frames)):
        under = speech[edges[i] : edges[i + 1]].astype(np.float64)
        rms_db = 10 * np.log10(max(float(np.mean(under**2)), 1e-10)) if len(under) else -100.0
        assert abs(level - max(rms_db, -100.0)) < 1e-3, i
