"""The style trainers' samples: target windows, references from other windows of the same speaker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from musedub.infra.errors import ConfigError
from musedub.pipeline.train.config import load_config
from musedub.pipeline.train.style_config import StyleTrainConfig
from musedub.pipeline.train.style_data import SpeakerSampler, Window, dataset_audio_dim, draw_references


def overlaps(a: Window, b: Window, gap: int) -> bool:
    """Whether two windows of one clip come within `gap` frames of each other."""
    return a.start < b.start + b.length + gap and b.start < a.start + a.length + gap


def test_references_avoid_the_target_window_and_cover_every_free_frame() -> None:
    rng = np.random.default_rng(0)
    target = Window(0, 10, 8)
    windows = [w for _ in range(300) for w in draw_references(rng, [30, 20], target, 2, 6, exclusion=3)]
    assert not any(w.clip == 0 and overlaps(w, target, 3) for w in windows)
    assert {w.length for w in windows if w.clip == 1} == {6}
    assert {(w.start, w.length) for w in windows if w.clip == 0 and w.start < 10} <= {(0, 6), (1, 6)}  # 7 free
    covered = {(w.clip, f) for w in windows for f in range(w.start, w.start + w.length)}
    free = {(0, f) for f in [*range(7), *range(21, 30)]} | {(1, f) for f in range(20)}
    assert covered == free
    # a clip the target window fills, alone in its source: no reference at all rather than itself
    assert draw_references(rng, [12], Window(0, 2, 8), 3, 6, exclusion=2) == []
    short = draw_references(rng, [12], Window(0, 0, 8), 50, 6, exclusion=1)  # 3 free frames: shorter windows
    assert {(w.start, w.length) for w in short} == {(9, 3)}


def test_predictor_samples_come_from_the_row_s_source(style_dataset: Path) -> None:
    rows = pq.read_table(
        style_dataset / "clips", columns=["source_id", "clip_id", "frames"], partitioning=None
    ).to_pylist()
    assert sorted(r["frames"] for r in rows) == [35, 35, 40]
    sampler = SpeakerSampler(str(style_dataset), "predictor", 16, 3, 8, exclusion=2, margin=10, seed=0)
    counts = set()
    for row in rows * 10:
        sample = sampler.sample(row)
        clip_id, target = sample.target
        assert clip_id == row["clip_id"]
        assert sample.audio.shape == (16, 50, 64) and sample.lips.shape == (16, 20, 2)
        assert 0.2 < sample.lips[..., 1].mean() < 1.0  # the mouth lies in the lower part of the crop box
        counts.add(len(sample.references))
        for (ref_clip, window), audio, lips in zip(
            sample.references, sample.reference_audio, sample.reference_lips, strict=True
        ):
            assert ref_clip.startswith(row["source_id"])  # the same speaker (source), never another
            assert not (ref_clip == clip_id and overlaps(window, target, 2))  # never the target window
            assert audio.shape == (window.length, 50, 64) and lips.shape == (window.length, 20, 2)
            if ref_clip == clip_id:  # the same frames' prompts and lips as a target window would get
                same = sampler.source(row["source_id"])[target.clip]
                assert np.array_equal(audio, same.prompts(window.start, window.length))
    assert counts == {1, 2, 3}  # the number of references varies
    assert dataset_audio_dim(str(style_dataset)) == 64


def test_renderer_samples_are_crops_with_their_lip_motion(style_dataset: Path) -> None:
    rows = pq.read_table(style_dataset / "clips", columns=["source_id", "clip_id"], partitioning=None).to_pylist()
    sampler = SpeakerSampler(str(style_dataset), "renderer", 16, 2, 8, exclusion=5, margin=10, seed=1)
    for row in rows * 3:
        sample = sampler.sample(row)
        assert sample.target.shape == (256, 256, 3) and sample.target.dtype == np.uint8
        assert sample.motion.shape == (20, 2) and 1 <= len(sample.references) <= 2
        assert sample.references.shape[1:] == (256, 256, 3)
        clip_id, offset = sample.frame
        for ref_clip, ref_offset in sample.reference_frames:
            assert ref_clip.startswith(row["source_id"])
            assert ref_clip != clip_id or abs(ref_offset - offset) > 5


def test_the_command_names_the_model_and_a_file_cannot_contradict_it(tmp_path: Path) -> None:
    path = tmp_path / "style.yaml"
    path.write_text("dataset: d\noutput: o\n")
    config = load_config(str(path), StyleTrainConfig, {"kind": "renderer"})
    assert (config.kind, config.run_name, config.frames_per_sample) == ("renderer", "style-renderer", 1)
    path.write_text("dataset: d\noutput: o\nkind: renderer\nframes: 16\n")
    config = load_config(str(path), StyleTrainConfig, {"kind": "renderer"})
    assert config.frames == 16
    with pytest.raises(ConfigError, match="kind: 'renderer' contradicts the command's 'predictor'"):
        load_config(str(path), StyleTrainConfig, {"kind": "predictor"})
