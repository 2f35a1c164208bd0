"""The generator stage: bf16 stays within the delivery codec's own error of fp32, and a batch that
runs out of memory halves itself and generates the same frames (to the last level's rounding)."""

from __future__ import annotations

import io
import logging

import av
import numpy as np
import pytest
import torch
from skimage.data import astronaut

from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.store import ModelStore
from musedub.pipeline.dub.model_stages import GenerateStage
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.face.crop_geometry import FaceStatus
from musedub.pipeline.generators.musetalk import MuseTalkFaces


def face_crops(count: int) -> np.ndarray:
    """(count, 256, 256, 3) uint8 crops of a real face, each shifted a little."""
    image = astronaut()
    return np.stack([np.ascontiguousarray(image[4 * i : 4 * i + 256, 120 + 4 * i : 376 + 4 * i]) for i in range(count)])


def h264_round_trip(frames: np.ndarray, crf: int) -> np.ndarray:
    """The frames as a viewer sees them after the dub's own encoder (x264, yuv420p, preset medium)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_bf16_differs_from_fp32_by_less_than_the_encoder_does(tiny_weights: WeightsLayout) -> None:
    """bf16 keeps 8 significant bits (about 1 level in 255 per operation): on average it moves a
    generated pixel less than the H.264 encode at the default CRF 16 moves every output pixel
    anyway, so no viewer can tell the two apart. fp16 (11 bits) must come out closer still, which
    shows the comparison sees precision at all."""
    store = ModelStore(str(tiny_weights.root))
    crops = torch.from_numpy(face_crops(4))
    width = store.load_unet().audio_dim
    audio = torch.randn(4, 50, width, generator=torch.Generator().manual_seed(0))
    generated = {
        name: store.load_generator(device="cpu", dtype=dtype)(crops, crops, audio).numpy().astype(np.int16)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16))
    }
    bf16 = np.abs(generated["bf16"] - generated["fp32"]).mean()
    fp16 = np.abs(generated["fp16"] - generated["fp32"]).mean()
    fp32 = generated["fp32"].astype(np.uint8)
    encoder = np.abs(h264_round_trip(fp32, DubOptions().crf).astype(np.int16) - fp32).mean()
    assert 0 < fp16 < bf16 < encoder, (fp16, bf16, encoder)


def segment_row(crops: np.ndarray, prompts: np.ndarray, options: DubOptions) -> dict:
    """A segment whose every frame has a face of track 1."""
    n = len(crops)
    return {
        "crops": crops,
        "prompts": prompts,
        "options": options.model_dump_json(),
        "content_key": "job",
        "start": 0,
        "stop": n,
        "status": np.full(n, FaceStatus.OK, np.uint8),
        "dubbed": np.ones(n, np.int32),
    }


def limit_generator(stage: GenerateStage, generator: torch.nn.Module, limit: int) -> OutOfMemoryAbove:
    limited = OutOfMemoryAbove(generator, limit)
    stage._generators["musetalk"] = MuseTalkFaces(limited)  # type: ignore[arg-type]
    return limited


class OutOfMemoryAbove(torch.nn.Module):
    """The generator on a device that holds at most `limit` frames per batch."""

    def __init__(self, generator: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.generator, self.limit, self.sizes = generator, limit, []

    def forward(self, targets: torch.Tensor, references: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(targets))
        if len(targets) > self.limit:
            raise torch.OutOfMemoryError(f"{len(targets)} frames do not fit")
        return self.generator(targets, references, audio)


def test_a_batch_out_of_memory_halves_until_it_fits_and_generates_the_same_frames(
    tiny_weights: WeightsLayout, caplog: pytest.LogCaptureFixture
) -> None:
    options = DubOptions(batch_size=4)
    stage = GenerateStage(str(tiny_weights.root), options, "cpu", "fp32")
    stage.setup()
    crops = face_crops(5)
    generator = stage._generators["musetalk"].model  # type: ignore[attr-defined]
    prompts = np.random.default_rng(0).normal(size=(5, 50, generator.unet.audio_dim)).astype(np.float32)
    row = segment_row(crops, prompts, options)
    expected = stage(row)["generated"]
    limited = limit_generator(stage, generator, limit=2)
    with caplog.at_level(logging.WARNING):
        first, second = stage(row)["generated"], stage(row)["generated"]  # the second starts at the size that fitted
    assert np.array_equal(first, second) and np.abs(first.astype(np.int16) - expected).max() <= 1  # per batch size
    assert limited.sizes == [4, 2, 2, 2] + [2, 2, 2]  # every batch padded to the size (5 frames: 2 + 2 + 1)
    assert "a batch of 4 frames ran out of memory on cpu; retrying with 2" in caplog.text
    limit_generator(stage, generator, limit=0)
    with pytest.raises(torch.OutOfMemoryError):  # not even one frame fits: the error reaches the errors table
        stage(row)


def test_every_batch_is_padded_to_one_shape(tiny_weights: WeightsLayout) -> None:
    """One shape: the same bits whichever frames share a batch, and one graph for a compiled model."""
    options = DubOptions(batch_size=4)
    stage = GenerateStage(str(tiny_weights.root), options, "cpu", "fp32")
    generator = ModelStore(str(tiny_weights.root)).load_generator(device="cpu")
    limited = limit_generator(stage, generator, limit=4)
    crops = face_crops(5)
    prompts = np.random.default_rng(0).normal(size=(5, 50, generator.unet.audio_dim)).astype(np.float32)
    generated = stage(segment_row(crops, prompts, options))["generated"]
    assert limited.sizes == [4, 4] and generated.shape == crops.shape  # 5 crops: 4 + 1 padded to 4
    alone = generator(*(torch.from_numpy(crops[4:]),) * 2, torch.from_numpy(prompts[4:]))
    assert np.abs(generated[4:].astype(np.int16) - alone.numpy()).max() <= 1  # the padding changes nothing
