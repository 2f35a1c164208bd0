"""A job's video is probed once, at planning: stages read that probe from memory (same process)
or from the job's index file (other processes), never by demuxing the video again."""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from musedub.infra.sample_media import write_clip
from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.dub import plan as plan_module
from musedub.pipeline.media import index as index_module
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import index_bytes, info_from_bytes, save_index, video_info
from musedub.pipeline.media.probe import probe_video


def test_an_index_keeps_every_field_and_reads_the_same_frames(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "r.mp4", Fraction(30000, 1001), 12, rotation=90)
    info = probe_video(str(clip))
    data = index_bytes(info)
    back = info_from_bytes(data)
    assert len(data) < 16 * info.frame_count + 24 * len(info.keyframes) + 2400  # int64s and a header
    pts, dts, offset = info.keyframes[0].tolist()  # the first keyframe: shown first, decoded no later
    assert pts == int(info.pts[0]) and dts <= pts and offset > 0
    assert (back.uri, back.width, back.height, back.fps, back.rotation, back.codec, back.still, back.identity) == (
        info.uri,
        info.width,
        info.height,
        info.fps,
        info.rotation,
        info.codec,
        info.still,
        info.identity,
    )
    assert np.array_equal(back.pts, info.pts) and np.array_equal(back.source_index, info.source_index)
    assert np.array_equal(back.keyframes, info.keyframes)
    with FrameReader(info) as a, FrameReader(back) as b:
        assert all(np.array_equal(x, y) for x, y in zip(a.frames([0, 5, 11, 3]), b.frames([0, 5, 11, 3]), strict=True))


def test_a_row_from_another_process_reads_the_index_file_and_never_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = probe_video(str(write_clip(tmp_path / "c.mp4", Fraction(25), 5)))
    save_index(info, str(tmp_path / "index.npz"))

    def no_probe(*args: object) -> None:
        raise AssertionError("probed again")

    monkeypatch.setattr(index_module, "probe_video", no_probe)
    row = {
        "job_key": "planned-elsewhere",
        "video": info.uri,
        "still_fps": "25",
        "media_index": str(tmp_path / "index.npz"),
    }
    assert np.array_equal(video_info(row).source_index, info.source_index)


def test_a_dub_of_several_segments_probes_its_video_once(
    tmp_path: Path,
    tiny_weights: WeightsLayout,
    short_speech: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clip = write_clip(tmp_path / "face.mp4", Fraction(25), 12)
    calls: list[str] = []

    def counted(uri: str, *args: object, **kwargs: object) -> object:
        calls.append(uri)
        return probe_video(uri, *args, **kwargs)

    monkeypatch.setattr(plan_module, "probe_video", counted)
    monkeypatch.setattr(index_module, "probe_video", counted)
    caplog.set_level(logging.INFO)
    out = tmp_path / "out.mp4"
    args = ["dub", "--video", str(clip), "--audio", str(short_speech), "--output", str(out), "--segment-seconds", "0.2"]
    assert (
        main([*args, "--weights", str(tiny_weights.root), "--landmarks", "dlib", "--length-policy", "trim-audio"]) == 0
    )
    assert json.loads(Path(f"{out}.report.json").read_text())["segments"] == 3  # tracked, cropped, blended per segment
    assert calls == [str(clip)]
    tracked = [r.getMessage() for r in caplog.records if "faces tracked" in r.getMessage()]
    assert [m.split(": faces tracked in frames ")[1].split(" (")[0] for m in tracked] == [
        "0-5 of 12",
        "5-10 of 12",
        "10-12 of 12",
    ]
