"""Any audio to 16 kHz mono with PyAV: rates, channels, containers, and bad files."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import resample_poly

from musedub.infra.errors import InputError
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono


def aligned_correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_44k1_stereo_becomes_16k_mono(tmp_path: Path, speech: np.ndarray, write_audio_file) -> None:
    up = resample_poly(speech, 441, 160)  # 16 kHz -> 44.1 kHz, an independent resampler
    path = write_audio_file(tmp_path / "stereo.wav", np.stack([up, up], axis=1), 44_100)
    decoded = decode_audio_16k_mono(str(path))
    assert abs(len(decoded) - len(speech)) <= 2
    assert aligned_correlation(decoded, speech) > 0.99


def test_channels_are_averaged(tmp_path: Path, speech: np.ndarray, write_audio_file) -> None:
    path = write_audio_file(tmp_path / "left.wav", np.stack([speech, np.zeros_like(speech)], axis=1), 16_000)
    decoded = decode_audio_16k_mono(str(path))
    np.testing.assert_allclose(decoded, speech / 2, atol=2e-4)  # not swresample's 1/sqrt(2) downmix


def test_aac_in_mp4(tmp_path: Path, speech: np.ndarray, write_audio_file) -> None:
    path = write_audio_file(tmp_path / "speech.m4a", speech, 16_000, codec="aac")
    decoded = decode_audio_16k_mono(str(path))
    assert abs(len(decoded) - len(speech)) < 2048  # AAC priming/padding


def test_reads_from_s3(s3_bucket: str, speech_path: Path, speech: np.ndarray) -> None:
    import boto3

    boto3.client("s3").upload_file(str(speech_path), s3_bucket, "in/speech.wav")
    np.testing.assert_array_equal(decode_audio_16k_mono(f"s3://{s3_bucket}/in/speech.wav"), speech)
    with pytest.raises(InputError, match="cannot be read"):
        decode_audio_16k_mono(f"s3://{s3_bucket}/in/absent.wav")


def test_zero_length_audio(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as out:  # a valid header, no samples
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
    with pytest.raises(InputError, match="holds no samples"):
        decode_audio_16k_mono(str(path))


def test_video_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    with pytest.raises(InputError, match="has no audio stream"):
        decode_audio_16k_mono(str(path), what="dub audio")


@pytest.mark.parametrize("payload", [b"", np.random.default_rng(0).bytes(50_000)])
def test_not_media(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(payload)
    with pytest.raises(InputError, match="not a readable media file"):
        decode_audio_16k_mono(str(path))


def test_truncated_file_fails_cleanly_or_decodes_a_prefix(tmp_path: Path, speech: np.ndarray, write_audio_file) -> None:
    whole = write_audio_file(tmp_path / "whole.m4a", speech, 16_000, codec="aac").read_bytes()
    path = tmp_path / "cut.m4a"
    path.write_bytes(whole[: len(whole) // 2])
    try:
        decoded = decode_audio_16k_mono(str(path))
    except InputError as exc:
        assert str(path) in str(exc)
    else:
        assert 0 < len(decoded) <= len(speech) + 2048


def test_missing_file() -> None:
    with pytest.raises(InputError, match="does not exist"):
        decode_audio_16k_mono("/nonexistent/speech.wav")
