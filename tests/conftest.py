"""Shared fixtures: tiny random weights in the published layout, real speech, a real S3 server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from infra.random_weights import write_random_weights
from infra.weights_layout import WeightsLayout
from models.audio_encoder import WhisperAudioEncoder
from pipeline.audio_decode import decode_audio_16k_mono

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> WeightsLayout:
    return write_random_weights(tmp_path_factory.mktemp("weights") / "tiny", tiny=True, seed=0, with_v10=True)


@pytest.fixture(scope="session")
def audio_encoder(tiny_weights: WeightsLayout) -> WhisperAudioEncoder:
    return WhisperAudioEncoder.from_pretrained(tiny_weights.whisper)


@pytest.fixture(scope="session")
def speech_path() -> Path:
    return DATA / "speech_16k.wav"


@pytest.fixture(scope="session")
def speech(speech_path: Path) -> np.ndarray:
    return decode_audio_16k_mono(str(speech_path))


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le") -> Path:
    """Encode float samples (n,) or (n, channels) in [-1, 1] with PyAV."""
    planar = samples[:, None] if samples.ndim == 1 else samples
    layout = {1: "mono", 2: "stereo"}[planar.shape[1]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        fmt = stream.codec_context.format.name if codec != "pcm_s16le" else "s16"
        frame_size = stream.codec_context.frame_size or 1024
        pcm = (np.clip(planar, -1, 1) * 32767).astype(np.int16)
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        pts = 0
        for i in range(0, len(pcm), frame_size):
            chunk = np.ascontiguousarray(pcm[i : i + frame_size])  # (n, channels) interleaved
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = pts
            pts += len(chunk)
            for converted in resampler.resample(frame):
                container.mux(stream.encode(converted))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def write_audio_file():
    return write_audio


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback for the session; boto3/s3fs find it through the environment."""
    binary = shutil.which("moto_server")
    assert binary, "moto_server missing: install the test extra (pip install -e '.[test]')"
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start on loopback within 30 s") from None
            time.sleep(0.1)
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture()
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test; returns its name."""
    import boto3

    name = ("t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()))[:50].strip("-")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name
