"""Shared fixtures: tiny random weights in the published layout, real speech, a real S3 server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from s3_proxy import ObjectCounts, counting_proxy

from musedub.infra.sample_media import write_audio
from musedub.models.audio_encoder import WhisperAudioEncoder
from musedub.models.face_parsing import SKIN
from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.random import write_random_face_parser, write_random_training_models, write_random_weights
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono

DATA = Path(__file__).parent / "data"


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """torch on one thread, as stage actors run: on two threads tiny models stall when other work
    shares the cores (a tiny predictor step took 1.2 s instead of 6 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> WeightsLayout:
    return write_random_weights(tmp_path_factory.mktemp("weights") / "tiny", tiny=True, seed=0, with_v10=True)


@pytest.fixture(scope="session")
def training_weights(tiny_weights: WeightsLayout, tmp_path_factory: pytest.TempPathFactory) -> WeightsLayout:
    """The tiny weights plus a random tiny VGG19 and SyncNet, as training reads them."""
    layout = WeightsLayout(tmp_path_factory.mktemp("weights") / "training")
    shutil.copytree(tiny_weights.root, layout.root)
    write_random_training_models(layout, tiny=True)
    return layout


@pytest.fixture(scope="session")
def audio_encoder(tiny_weights: WeightsLayout) -> WhisperAudioEncoder:
    return WhisperAudioEncoder.from_pretrained(tiny_weights.whisper)


@pytest.fixture(scope="session")
def speech_path() -> Path:
    return DATA / "speech_16k.wav"


@pytest.fixture(scope="session")
def speech(speech_path: Path) -> np.ndarray:
    return decode_audio_16k_mono(str(speech_path))


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


@pytest.fixture()
def s3_counts(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ObjectCounts]:
    """What this process's S3 clients fetch, counted per object by a proxy in front of the test
    server (tests/s3_proxy.py), with an empty block cache of the test's own."""
    import s3fs

    with counting_proxy(s3_endpoint) as (proxy, counts):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        monkeypatch.setenv("MUSEDUB_CACHE_DIR", str(tmp_path / "block-cache"))
        s3fs.S3FileSystem.clear_instance_cache()
        yield counts
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def ray_cluster(s3_endpoint: str) -> Iterator[str]:
    """A local 2-CPU Ray cluster for the session, started after the S3 endpoint is in the
    environment its workers inherit; yields its GCS address for driver subprocesses."""
    import ray

    from musedub.infra.ray_cluster import connect

    connect(num_cpus=2)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def dlib_detector():
    """The real dlib 68-point landmark model (the dlib extra)."""
    from musedub.models.landmarks import load_landmark_detector

    return load_landmark_detector("dlib", Path("unused"))


@pytest.fixture(scope="session")
def short_speech(tmp_path_factory: pytest.TempPathFactory, speech: np.ndarray) -> Path:
    """2.2 s of the real speech (55 frames at 25 fps): long enough to cycle a 1 s clip."""
    return write_audio(tmp_path_factory.mktemp("speech") / "speech_2s.wav", speech[16000 : 16000 + 35200], 16000)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def parsing_weights(tiny_weights: WeightsLayout, tmp_path_factory: pytest.TempPathFactory) -> WeightsLayout:
    """The tiny weights plus a random full-size BiSeNet at face-parse-bisent/79999_iter.pth.

    Its head is tilted towards 'skin' (a random head almost never picks it), so the jaw mask is
    not empty and blending through the parser really happens.
    """
    layout = WeightsLayout(tmp_path_factory.mktemp("weights") / "with-parser")
    shutil.copytree(tiny_weights.root, layout.root)
    path = write_random_face_parser(layout, seed=1)
    state = torch.load(path, weights_only=True)
    head = state["conv_out.conv_out.weight"]  # (19, 256, 1, 1) over non-negative features
    head[SKIN] = head[SKIN].abs() + 1.0
    torch.save(state, path)
    return layout


class WebhookReceiver:
    """Records each POST; answers the statuses queued in `answers` first, then 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-IN-PATH"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """An HTTP server on loopback that records webhook POSTs."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="session")
def style_dataset(tmp_path_factory: pytest.TempPathFactory, tiny_weights: WeightsLayout, speech: np.ndarray) -> Path:
    """A dataset written by the real preprocess stage, in process (no Ray), from two talking-head
    sources: a.mp4 (75 frames, a faceless shot in the middle: two clips of 35) and b.mp4 (40 frames:
    one clip). Faces of ~120 px, tiny whisper states (64 wide), crops stored. About 5 s."""
    from fractions import Fraction

    from musedub.infra.sample_media import write_clip
    from musedub.pipeline.dataset.preprocess import plan_preprocess
    from musedub.pipeline.dataset.settings import PreprocessSettings
    from musedub.pipeline.dataset.source import PreprocessSourceStage

    root = tmp_path_factory.mktemp("style-dataset")
    (root / "src").mkdir()
    write_clip(root / "src" / "a.mp4", Fraction(25), 75, faceless=range(35, 40), audio=speech[: 3 * 16000])
    write_clip(root / "src" / "b.mp4", Fraction(25), 40, audio=speech[3 * 16000 : 5 * 16000])
    settings = PreprocessSettings(weights=str(tiny_weights.root), landmarks="dlib", min_face=64, min_clip_frames=16)
    stage = PreprocessSourceStage(settings)
    stage.setup()
    for row in plan_preprocess(str(root / "src"), str(root / "dataset"), settings).todo:
        assert stage(row)["status"] == "ok"
    return root / "dataset"
