"""Inputs too large are refused from their headers, before a frame or sample is decoded."""

from __future__ import annotations

import struct
import time
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest

from musedub.infra.errors import ConfigError, InputError
from musedub.infra.sample_media import write_clip
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.limits import MediaLimits
from musedub.pipeline.media.probe import probe_video


def png_bomb(path: Path, side: int = 16000) -> Path:
    """A PNG whose header promises side x side RGB (768 MB decoded for 16000) in a few hundred bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (3 * side + 1) * 4)  # a few rows; the rest never arrives
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_a_decode_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    tick = time.perf_counter()
    with pytest.raises(InputError, match=r"is 16000x16000 \(256.0 MP\), over the limit of 40.0 MP"):
        probe_video(str(png_bomb(tmp_path / "bomb.png")))
    assert time.perf_counter() - tick < 5  # nothing was decoded


def test_limits_are_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 25, 50)  # 320x240, 2 s
    monkeypatch.setenv("MUSEDUB_MAX_PIXELS", "50000")
    with pytest.raises(InputError, match="320x240.*MUSEDUB_MAX_PIXELS"):
        probe_video(str(clip))
    monkeypatch.delenv("MUSEDUB_MAX_PIXELS")
    monkeypatch.setenv("MUSEDUB_MAX_SECONDS", "1")
    with pytest.raises(InputError, match="lasts 2 s, over the limit of 1 s"):
        probe_video(str(clip))
    monkeypatch.setenv("MUSEDUB_MAX_SECONDS", "100")
    monkeypatch.setenv("MUSEDUB_MAX_FRAMES", "30")
    with pytest.raises(InputError, match="over 30 frames"):
        probe_video(str(clip))
    monkeypatch.setenv("MUSEDUB_MAX_FRAMES", "lots")
    with pytest.raises(ConfigError, match="MUSEDUB_MAX_FRAMES='lots' is not a number"):
        MediaLimits.from_env()


def test_long_audio_is_refused_before_it_is_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(np.zeros(16000 * 3, np.int16).tobytes())
    monkeypatch.setenv("MUSEDUB_MAX_SECONDS", "2")
    with pytest.raises(InputError, match=f"audio {path} lasts 3 s"):
        decode_audio_16k_mono(str(path))


def test_audio_holding_nan_names_the_file_before_anything_runs(tmp_path: Path) -> None:
    samples = np.zeros(16000, np.float32)
    samples[8000] = np.nan
    path = tmp_path / "nan.wav"
    with wave.open(str(path), "wb") as handle:  # 32-bit float WAV: format 3 written by hand below
        handle.setnchannels(1)
        handle.setsampwidth(4)
        handle.setframerate(16000)
        handle.writeframes(samples.tobytes())
    data = bytearray(path.read_bytes())
    data[20:22] = struct.pack("<H", 3)  # WAVE_FORMAT_IEEE_FLOAT
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"nan.wav holds 1 NaN or infinite sample\(s\), the first at 0.500 s"):
        decode_audio_16k_mono(str(path), "dub audio")
