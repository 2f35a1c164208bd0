"""Batches filled from several segments at once: each segment's frames come out as they would alone,
a lone segment does not wait for company past the bound, and one bad segment fails alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from musedub.models.generator import MuseTalkGenerator
from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.store import ModelStore
from musedub.pipeline.generators.base import SegmentInputs
from musedub.pipeline.generators.batching import FrameBatcher
from musedub.pipeline.generators.musetalk import MuseTalkFaces, MuseTalkSegment

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(tiny_weights: WeightsLayout) -> MuseTalkGenerator:
    return ModelStore(str(tiny_weights.root)).load_generator(device="cpu")


def segment(model: MuseTalkGenerator, count: int, seed: int, width: int | None = None) -> MuseTalkSegment:
    """`count` frames of random crops and prompts (prompts `width` wide: the model's own by default)."""
    rng = np.random.default_rng(seed)
    width = width or model.unet.audio_dim
    return MuseTalkFaces(model).segment(
        SegmentInputs(
            crops=torch.from_numpy(rng.integers(0, 256, (count, 256, 256, 3), dtype=np.uint8)),
            prompts=torch.from_numpy(rng.normal(size=(count, 50, width)).astype(np.float32)),
            seed_key=f"job-{seed}",
            frames=np.arange(count),
            tracks=np.ones(count, np.int32),
        )
    )


def together(batcher: FrameBatcher, segments: list[MuseTalkSegment], size: int) -> list[torch.Tensor | Exception]:
    """Each segment through `batcher` from its own thread, as a GPU actor's calls arrive."""

    def one(s: MuseTalkSegment) -> torch.Tensor | Exception:
        try:
            return batcher.generate(s, len(s.crops), size)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(segments)) as pool:
        return [f.result(timeout=120) for f in [pool.submit(one, s) for s in segments]]


def alone(s: MuseTalkSegment, size: int) -> torch.Tensor:
    return FrameBatcher(CPU).generate(s, len(s.crops), size)


def test_segments_fill_one_batch_and_each_comes_out_as_it_would_alone(model: MuseTalkGenerator) -> None:
    segments = [segment(model, 2, 0), segment(model, 1, 1), segment(model, 1, 2)]
    batcher = FrameBatcher(CPU, callers=3, wait_s=60)  # no timeout: the batch runs once it is full
    out = together(batcher, segments, size=4)
    assert batcher.stats.batches == 1 and batcher.stats.mixed == 1 and batcher.stats.padding == 0
    for s, faces in zip(segments, out, strict=True):
        assert isinstance(faces, torch.Tensor) and torch.equal(faces, alone(s, 4))  # the same bits


def test_a_lone_segment_runs_part_filled_after_the_wait(model: MuseTalkGenerator) -> None:
    batcher = FrameBatcher(CPU, callers=4, wait_s=0.05)  # three more callers could come; none does
    only = segment(model, 1, 0)
    (faces,) = together(batcher, [only], size=4)
    assert isinstance(faces, torch.Tensor) and torch.equal(faces, alone(only, 4))
    assert batcher.stats.batches == 1 and batcher.stats.padding == 3


def test_a_bad_segment_fails_alone_when_it_shared_a_batch(model: MuseTalkGenerator) -> None:
    good, bad = segment(model, 2, 0), segment(model, 2, 1, width=model.unet.audio_dim + 1)
    batcher = FrameBatcher(CPU, callers=2, wait_s=60)
    first, second = together(batcher, [good, bad], size=4)
    assert isinstance(first, torch.Tensor) and torch.equal(first, alone(good, 4))
    assert isinstance(second, ValueError) and "audio prompts need width" in str(second)


def test_a_segment_longer_than_a_batch_keeps_its_frame_order(model: MuseTalkGenerator) -> None:
    long, short = segment(model, 5, 0), segment(model, 2, 1)
    batcher = FrameBatcher(CPU, callers=2, wait_s=60)
    out = together(batcher, [long, short], size=4)
    assert [len(x) for x in out] == [5, 2]  # type: ignore[arg-type]
    assert torch.equal(out[0], alone(long, 4)) and torch.equal(out[1], alone(short, 4))  # type: ignore[arg-type]
    assert batcher.stats.frames == 7 and batcher.stats.batches == 2
