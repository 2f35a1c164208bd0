"""The style generator plug-in on tiny random weights: each frame's start noise depends on the job
and the frame only, so a frame comes out the same in any batch, and each dubbed face borrows from
its own reference and no other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.data import astronaut

from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.generators.base import SegmentInputs
from musedub.pipeline.generators.load import load_face_generator
from musedub.pipeline.generators.style import StyleFaces, StyleSegment, frame_noise
from musedub.pipeline.generators.style_reference import (
    ANY_TRACK,
    REFERENCE_WINDOWS,
    WINDOW_FRAMES,
    StyleReference,
    pick_windows,
    read_references,
    reference_for,
    write_references,
)


def face_crops(count: int, shift: int = 0) -> np.ndarray:
    image = astronaut()
    return np.stack(
        [
            np.ascontiguousarray(image[4 * i + shift : 4 * i + shift + 256, 120 + 4 * i : 376 + 4 * i])
            for i in range(count)
        ]
    )


def reference(seed: int, width: int) -> StyleReference:
    """A reference of 2 windows (the second 3 frames short) and 2 faces."""
    rng = np.random.default_rng(seed)
    mask = np.ones((2, 6), bool)
    mask[1, 3:] = False
    return StyleReference(
        audio=rng.normal(size=(2, 6, 50, width)).astype(np.float32) * mask[..., None, None],
        lips=rng.uniform(0.2, 0.8, size=(2, 6, 20, 2)).astype(np.float32) * mask[..., None, None],
        mask=mask,
        crops=face_crops(2, shift=8 * seed),
    )


@pytest.fixture(scope="module")
def style(tiny_weights: WeightsLayout) -> StyleFaces:
    torch.manual_seed(0)
    return load_face_generator("style", str(tiny_weights.root), "v1.5", "cpu", torch.float32)  # type: ignore[return-value]


def inputs(style: StyleFaces, tracks: list[int], uri: Path) -> SegmentInputs:
    width = style.predictor.config.audio_dim
    prompts = np.random.default_rng(7).normal(size=(len(tracks), 50, width)).astype(np.float32)
    return SegmentInputs(
        crops=torch.from_numpy(face_crops(len(tracks))),
        prompts=torch.from_numpy(prompts),
        seed_key="job-a",
        frames=np.arange(10, 10 + len(tracks)),
        tracks=np.array(tracks, np.int32),
        style_reference=str(uri),
        style_steps=2,
    )


def test_start_noise_depends_on_the_job_and_the_frame_only() -> None:
    both = frame_noise("job-a", np.array([3, 4]), (4, 32, 32))
    assert torch.equal(frame_noise("job-a", np.array([4]), (4, 32, 32))[0], both[1])
    assert not torch.equal(both[0], both[1])
    assert not torch.equal(frame_noise("job-b", np.array([3]), (4, 32, 32))[0], both[0])


def generate(segment: StyleSegment, positions: list[int]) -> torch.Tensor:
    return segment.run(segment.take(torch.tensor(positions)))


def test_a_frame_comes_out_the_same_wherever_it_sits_in_a_batch(style: StyleFaces, tmp_path: Path) -> None:
    width = style.predictor.config.audio_dim
    write_references({ANY_TRACK: reference(1, width)}, str(tmp_path / "ref.npz"))
    faces = style.segment(inputs(style, [1] * 4, tmp_path / "ref.npz"))
    whole = generate(faces, [0, 1, 2, 3])
    assert whole.shape == (4, 256, 256, 3)
    # same shape, the same bits (at power-of-two batch sizes: an odd one splits rows unevenly over threads)
    assert torch.equal(generate(faces, [3, 2, 1, 0]).flip(0), whole)
    assert (whole[0].int() - whole[1].int()).abs().float().mean() > 1  # frames differ: their noise and crops do


def test_each_face_borrows_from_its_own_reference(style: StyleFaces, tmp_path: Path) -> None:
    width = style.predictor.config.audio_dim
    tracks = [1, 1, 1, 2, 2, 2]
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    write_references({1: reference(1, width), 2: reference(2, width)}, str(first))
    write_references({1: reference(1, width), 2: reference(3, width)}, str(second))  # face 2's changed
    a, b = style.segment(inputs(style, tracks, first)), style.segment(inputs(style, tracks, second))
    # face 1's frames: its reference and windows are untouched
    assert torch.equal(generate(a, [0, 1, 2]), generate(b, [0, 1, 2]))
    # face 2's follow its new reference (random weights: a small change)
    assert not torch.equal(generate(a, [3, 4, 5]), generate(b, [3, 4, 5]))


def test_references_round_trip_and_a_face_without_its_own_shares_any_tracks(tmp_path: Path) -> None:
    refs = {3: reference(1, 8), 5: reference(2, 8)}
    write_references(refs, str(tmp_path / "r.npz"))
    back = read_references(str(tmp_path / "r.npz"))
    assert sorted(back) == [3, 5] and all(np.array_equal(back[5].lips, refs[5].lips) for _ in (0,))
    assert np.array_equal(back[3].crops, refs[3].crops) and back[3].mask.dtype == bool
    shared = {ANY_TRACK: refs[3], 5: refs[5]}
    assert reference_for(shared, 7) is refs[3] and reference_for(shared, 5) is refs[5]


@pytest.mark.parametrize("total", [1, 3, 120, 1000])
def test_windows_spread_over_the_footage_without_overlap(total: int) -> None:
    windows = pick_windows(total)
    picked = np.concatenate(windows)
    assert len(windows) == min(REFERENCE_WINDOWS, total) and all(0 < len(w) <= WINDOW_FRAMES for w in windows)
    assert len(np.unique(picked)) == len(picked) and all(
        np.array_equal(np.diff(w), np.ones(len(w) - 1)) for w in windows
    )
    assert len(picked) == min(total, REFERENCE_WINDOWS * WINDOW_FRAMES)
    if total == 1000:
        assert windows[0][0] >= 100 and windows[-1][-1] >= 800  # from the middle of each quarter
