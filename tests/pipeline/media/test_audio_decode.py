"""Any audio to 16 kHz mono with PyAV: rates, channels, containers, and bad files."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import resample_poly

from musedub.infra.errors import InputError
from musedub.pipeline.media.audio_decode import _packed_float, decode_audio_16k_mono


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


@pytest.mark.parametrize(
    ("fmt", "layout"),
    [
        ("s16", "mono"),
        ("s16", "stereo"),
        ("s16p", "stereo"),
        ("s32", "stereo"),
        ("s32p", "5.1"),
        ("flt", "mono"),
        ("fltp", "stereo"),
    ],
)
def test_frames_already_at_16k_skip_the_resampler_bit_for_bit(fmt: str, layout: str) -> None:
    """The dub's samples must not change with the shortcut: it gives what the resampler gives."""
    channels, n = av.AudioLayout(layout).nb_channels, 4096
    rng = np.random.default_rng(0)
    if fmt.startswith("s16"):
        samples = rng.integers(-(2**15), 2**15, (channels, n)).astype(np.int16)
    elif fmt.startswith("s32"):
        samples = rng.integers(-(2**31), 2**31, (channels, n), dtype=np.int64).astype(np.int32)
    else:
        samples = rng.normal(0, 0.5, (channels, n)).astype(np.float32)
    samples[0, :3] = [np.iinfo(samples.dtype).min, np.iinfo(samples.dtype).max, 0] if samples.dtype.kind == "i" else 0
    layout_in_frame = samples if fmt.endswith("p") else samples.T.reshape(1, -1).copy()
    frame = av.AudioFrame.from_ndarray(layout_in_frame, format=fmt, layout=layout)
    frame.sample_rate = 16_000
    resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=16_000)
    expected = np.concatenate([out.to_ndarray() for out in resampler.resample(frame) + resampler.resample(None)], 1)
    np.testing.assert_array_equal(_packed_float(frame).view(np.uint32), expected.view(np.uint32))
    frame.sample_rate = 48_000
    assert _packed_float(frame) is None  # resampled as before
