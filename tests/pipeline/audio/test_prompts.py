"""Audio prompts: the reference's windowing at 25 fps, zero padding, segments, odd inputs."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from musedub.infra.errors import InputError
from musedub.models.audio_encoder import WhisperAudioEncoder
from musedub.models.constants import WINDOW_SAMPLES
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono


@pytest.fixture(scope="module")
def long_speech(speech: np.ndarray) -> np.ndarray:
    """About 35 s of real speech: crosses the first 30 s window boundary."""
    return np.tile(speech, 5)[: 35 * 16_000 + 123]


@pytest.fixture(scope="module")
def whole(audio_encoder: WhisperAudioEncoder, long_speech: np.ndarray) -> np.ndarray:
    return AudioPrompter(audio_encoder).for_waveform(long_speech, Fraction(25))


def reference_formulation(encoder: WhisperAudioEncoder, samples: np.ndarray, fps: int) -> np.ndarray:
    """The reference's own steps at an integer fps: encode every 30 s window, trim, pad, slide."""
    windows = [samples[i : i + WINDOW_SAMPLES] for i in range(0, len(samples), WINDOW_SAMPLES)]
    feats = torch.cat(list(encoder.encode_windows(windows)))  # (W*1500, 5, D)
    feats = feats[: math.floor(len(samples) / 16000 * 50)]
    multiplier = 50 / fps
    pad = math.ceil(multiplier)
    zeros = lambda n: torch.zeros(n, *feats.shape[1:])  # noqa: E731
    padded = torch.cat([zeros(pad * 2), feats, zeros(pad * 3 * 2)])
    frames = math.floor(len(samples) / 16000 * fps)
    clips = [padded[math.floor(i * multiplier) : math.floor(i * multiplier) + 10] for i in range(frames)]
    return torch.stack(clips).reshape(frames, 50, -1).numpy()


def test_matches_the_reference_at_25_fps(
    audio_encoder: WhisperAudioEncoder, long_speech: np.ndarray, whole: np.ndarray
) -> None:
    expected = reference_formulation(audio_encoder, long_speech, 25)
    assert whole.shape == expected.shape == (875, 50, 64)
    np.testing.assert_allclose(whole, expected, atol=1e-5)


def test_zero_padding_at_both_ends(audio_encoder: WhisperAudioEncoder, speech: np.ndarray) -> None:
    prompts = AudioPrompter(audio_encoder).for_waveform(speech, Fraction(25))
    assert prompts.shape == (215, 50, 64)
    tokens_zero = lambda frame: [bool(np.all(t == 0)) for t in prompts[frame]]  # noqa: E731
    assert tokens_zero(0) == [True] * 20 + [False] * 30  # whisper frames -4..-1 are padding
    assert tokens_zero(1) == [True] * 10 + [False] * 40
    # 430 whisper frames hold audio; frame 214 reads 424..433, so its last 4 frames (20 tokens) are zeros.
    assert tokens_zero(214) == [False] * 30 + [True] * 20
    assert tokens_zero(100) == [False] * 50


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (0, 37), (740, 760), (749, 750), (800, 875), (123, 124)])
def test_segments_equal_rows_of_the_whole(
    audio_encoder: WhisperAudioEncoder, long_speech: np.ndarray, whole: np.ndarray, start: int, stop: int
) -> None:
    read: list[int] = []

    def read_window(w: int) -> np.ndarray:
        read.append(w)
        return long_speech[w * WINDOW_SAMPLES : (w + 1) * WINDOW_SAMPLES]

    part = AudioPrompter(audio_encoder).for_frames(read_window, len(long_speech), Fraction(25), start, stop)
    np.testing.assert_array_equal(part, whole[start:stop])
    assert read == sorted(set(read)) and len(read) <= 2


def test_segment_far_from_the_start_reads_only_its_window(
    audio_encoder: WhisperAudioEncoder, long_speech: np.ndarray
) -> None:
    read: list[int] = []
    prompter = AudioPrompter(audio_encoder)
    prompter.for_frames(
        lambda w: read.append(w) or long_speech[w * WINDOW_SAMPLES :], len(long_speech), Fraction(25), 800, 875
    )
    assert read == [1]


def test_ntsc_rate_is_exact(audio_encoder: WhisperAudioEncoder, speech: np.ndarray) -> None:
    fps = Fraction(30000, 1001)
    prompts = AudioPrompter(audio_encoder).for_waveform(speech, fps)
    assert prompts.shape[0] == 257
    whole = AudioPrompter(audio_encoder).for_waveform(speech, Fraction(25))
    # NTSC frame 100 starts at whisper frame 162 = 25 fps frame 83's start (2*83 - 4).
    np.testing.assert_array_equal(prompts[100], whole[83])


def test_silent_audio_gives_finite_prompts(audio_encoder: WhisperAudioEncoder) -> None:
    prompts = AudioPrompter(audio_encoder).for_waveform(np.zeros(3 * 16_000, np.float32), Fraction(25))
    assert prompts.shape == (75, 50, 64) and np.isfinite(prompts).all()


def test_bad_ranges_and_too_short_audio(audio_encoder: WhisperAudioEncoder, speech: np.ndarray) -> None:
    prompter = AudioPrompter(audio_encoder)
    with pytest.raises(InputError, match="shorter than one frame"):
        prompter.for_waveform(speech[:300], Fraction(25))
    with pytest.raises(InputError, match=r"outside the audio's 215 frames"):
        prompter.for_waveform(speech, Fraction(25), 200, 216)
    with pytest.raises(InputError, match="outside"):
        prompter.for_waveform(speech, Fraction(25), 10, 10)


def test_44k1_stereo_gives_the_prompts_of_the_16k_mono_original(
    tmp_path: Path, audio_encoder: WhisperAudioEncoder, speech: np.ndarray, write_audio_file
) -> None:
    up = resample_poly(speech, 441, 160)
    stereo = decode_audio_16k_mono(str(write_audio_file(tmp_path / "s.wav", np.stack([up, up], axis=1), 44_100)))
    prompter = AudioPrompter(audio_encoder)
    original = prompter.for_waveform(speech, Fraction(25))
    resampled = prompter.for_waveform(stereo, Fraction(25))
    noise = prompter.for_waveform(
        np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32) * 0.1, Fraction(25)
    )
    assert resampled.shape == original.shape
    # Resampling twice moves the prompts far less than different audio does.
    assert np.abs(resampled - original).mean() < np.abs(noise - original).mean() / 10


def test_a_jobs_segments_encode_each_30_s_window_once(
    audio_encoder: WhisperAudioEncoder, long_speech: np.ndarray, whole: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompter = AudioPrompter(audio_encoder)
    encoded: list[int] = []
    original = audio_encoder.encode_windows

    def counting(windows: list[np.ndarray]) -> torch.Tensor:
        encoded.append(len(windows))
        return original(windows)

    monkeypatch.setattr(audio_encoder, "encode_windows", counting)
    segments = [(0, 250), (250, 500), (500, 750), (750, 875)]  # 10 s segments of the 35 s audio
    parts = [prompter.for_waveform(long_speech, Fraction(25), a, b, source="job-key") for a, b in segments]
    assert encoded == [1, 1]  # windows 0 and 1, each once, for four segments (eight without a source)
    np.testing.assert_array_equal(np.concatenate(parts), whole)  # the same bits as in one piece
