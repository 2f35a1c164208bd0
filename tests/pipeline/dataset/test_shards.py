"""Long sources in spans: each span reads only its own frames and writes its own part, its clips
stop at its edges, and the driver finishes the source from its spans, or fails it when one fails.

One 4 s talking head (a faceless shot at frames 30-40) cut at 1.6 s: spans [0, 40), [40, 80),
[80, 100). The first clip touches no edge and must come out as the whole source's does.
"""

from __future__ import annotations

import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musedub.infra.errors import InputError
from musedub.infra.sample_media import write_clip
from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.core.errors import ErrorsTable
from musedub.pipeline.dataset.preprocess import plan_preprocess
from musedub.pipeline.dataset.settings import PreprocessSettings
from musedub.pipeline.dataset.sis import SisSettings
from musedub.pipeline.dataset.sis_index import SisStage, join_parts, plan_index
from musedub.pipeline.dataset.source import PreprocessSourceStage
from musedub.pipeline.dataset.span_results import SourceSpans
from musedub.pipeline.dataset.spans import span_edges
from musedub.pipeline.dataset.tables import (
    CLIP_SCHEMA,
    clip_part,
    read_markers,
    source_id,
    table_uri,
    write_marker,
    write_table,
)
from musedub.pipeline.train.data import ClipSampler
from musedub.pipeline.train.style_data import SpeakerSampler

SHARD = 1.6  # seconds: 40 frames at 25 fps
EDGES = [(0, 40), (40, 80), (80, 100)]
SID = source_id("talk.mp4")
SAME = ("landmarks", "boxes", "crop_bottom", "audio", "whisper", "whisper_shape", "face_min_px", "jitter")


def settings(weights: WeightsLayout, shard: float = 300.0) -> PreprocessSettings:
    return PreprocessSettings(
        weights=str(weights.root), landmarks="dlib", min_face=64, min_clip_frames=16, shard_seconds=shard
    )


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, speech: np.ndarray) -> Path:
    folder = tmp_path_factory.mktemp("shards") / "src"
    folder.mkdir()
    write_clip(folder / "talk.mp4", Fraction(25), 100, faceless=range(30, 40), audio=speech[: 4 * 16000])
    return folder


@pytest.fixture(scope="module")
def stage(tiny_weights: WeightsLayout) -> PreprocessSourceStage:
    """One stage for both cuts: the shard length only changes how planning cuts a source."""
    stage = PreprocessSourceStage(settings(tiny_weights, SHARD))
    stage.setup()
    return stage


def clips(dataset: Path) -> dict[str, dict]:
    return {c["clip_id"]: c for c in pq.read_table(dataset / "clips", partitioning=None).to_pylist()}


def test_spans_are_whole_multiples_from_frame_zero() -> None:
    assert span_edges(100, 40) == EDGES
    assert span_edges(80, 40) == [(0, 40), (40, 80)] and span_edges(40, 40) == [(0, 40)]
    assert clip_part(f"{SID}-0003") == "0" and clip_part(f"{SID}-012-0003") == "012"
    with pytest.raises(ValueError, match="shard_seconds 0.5 holds fewer than min_clip_frames 25"):
        PreprocessSettings(weights="w", shard_seconds=0.5)


@pytest.mark.slow
def test_spans_on_the_cluster_match_the_whole_source_away_from_their_edges(
    ray_cluster: str,
    sources: Path,
    stage: PreprocessSourceStage,
    tiny_weights: WeightsLayout,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    whole = tmp_path / "whole"
    plan = plan_preprocess(str(sources), str(whole), settings(tiny_weights), work=str(tmp_path / "run"))
    assert [set(row) for row in plan.todo] == [{"item_id", "source", "source_id", "checksum", "out"}]  # as before
    assert stage(plan.todo[0])["status"] == "ok"

    out = tmp_path / "dataset"
    flags = ["--weights", str(tiny_weights.root), "--landmarks", "dlib", "--min-face", "64", "--min-clip-frames", "16"]
    assert (
        main(["preprocess", str(sources), str(out), *flags, "--shard-seconds", str(SHARD), "--address", ray_cluster])
        == 0
    )
    captured = capsys.readouterr()
    assert "1 source(s) to process (3 rows" in captured.err and "preprocess: 1/1 sources, 0 failed" in captured.err
    run = json.loads(captured.out)
    assert not (out / "_runs" / run["run_id"] / "media").exists()  # the planned media index went with the run
    marker = read_markers(str(out))[SID]
    assert (marker["status"], marker["spans"], marker["clips"], marker["frames"]) == ("ok", 3, 3, 100)
    assert marker["kept"] == 30 + 40 + 20 and json.loads(marker["dropped"])["no_face"] == 10
    parts = sorted(p.name for p in (out / "clips" / f"source_id={SID}").iterdir())
    assert parts == ["part-000.parquet", "part-001.parquet", "part-002.parquet"]
    for k, part in enumerate(parts):  # each span's clips in its own part, named by it, inside its edges
        for clip in pq.read_table(out / "clips" / f"source_id={SID}" / part).to_pylist():
            assert clip["clip_id"].startswith(f"{SID}-{k:03d}-")
            assert EDGES[k][0] <= clip["start"] < clip["stop"] <= EDGES[k][1]

    cut, one = clips(out), clips(whole)
    assert sorted((c["start"], c["stop"]) for c in cut.values()) == [(0, 30), (40, 80), (80, 100)]
    assert sorted((c["start"], c["stop"]) for c in one.values()) == [(0, 30), (40, 100)]
    first, same = cut[f"{SID}-000-0000"], one[f"{SID}-0000"]
    assert all(first[column] == same[column] for column in SAME)
    crops = {
        clip: pq.read_table(d / "frames", partitioning=None, filters=[("clip_id", "=", clip)]).column("crop")
        for clip, d in ((first["clip_id"], out), (same["clip_id"], whole))
    }
    assert crops[first["clip_id"]].equals(crops[same["clip_id"]]) and len(crops[same["clip_id"]]) == 30
    middle, longer = cut[f"{SID}-001-0000"], one[f"{SID}-0001"]
    points = 38 * 68 * 2  # frames 40-77: 78 and 79 are smoothed across frame 80 only in the whole source
    assert middle["landmarks"][:points] == longer["landmarks"][:points]
    assert middle["whisper"] == longer["whisper"][: len(middle["whisper"])]  # the same absolute windows

    todo, _ = plan_index(str(out), SisSettings())  # a row per part, each indexed alone, joined by the driver
    assert [(r["item_id"], r["part"], r["parts"]) for r in todo] == [
        (f"{SID}:{k:03d}", f"{k:03d}", 3) for k in range(3)
    ]
    [indexed] = join_parts(SisStage(SisSettings())(row) for row in todo)
    assert (indexed["item_id"], indexed["frames"]) == (SID, 90) and plan_index(str(out), SisSettings()) == ([], 1)
    assert sorted(p.name for p in (out / "sis" / f"source_id={SID}").iterdir()) == parts

    sample = ClipSampler(str(out), 16, (10.0, 0.0, 10), seed=0).sample(middle)  # crops and SIS from part-001
    assert sample.targets.shape == (16, 256, 256, 3) and sample.references.shape == (16, 256, 256, 3)
    speaker = SpeakerSampler(str(out), "predictor", 16, 1, 8, exclusion=2, margin=10, seed=0)
    assert sorted(c.clip_id for c in speaker.source(SID)) == sorted(cut)  # every part of the source


def test_a_failed_span_fails_its_source_alone(
    sources: Path, stage: PreprocessSourceStage, tiny_weights: WeightsLayout, tmp_path: Path
) -> None:
    src, out = tmp_path / "src", tmp_path / "dataset"
    shutil.copytree(sources, src)
    write_table(table_uri(str(out), "clips", "other"), pa.Table.from_pylist([], schema=CLIP_SCHEMA))
    write_marker(str(out), "other", {"status": "ok", "clips": 0})
    cut = settings(tiny_weights, SHARD)
    plan = plan_preprocess(str(src), str(out), cut, work=str(tmp_path / "run"))
    rows = {row["item_id"]: row for row in plan.todo}
    assert sorted(rows) == [f"{SID}:000", f"{SID}:001", f"{SID}:002"]
    spans = SourceSpans(plan.todo, cut)
    assert spans.add(stage(rows[f"{SID}:000"])) is None  # not finished: two spans to go
    assert (out / "clips" / f"source_id={SID}" / "part-000.parquet").is_file()
    os.utime(src / "talk.mp4", ns=(0, 0))  # the source changes under the run: the next span fails
    errors = ErrorsTable(str(tmp_path / "run"), "run")
    with pytest.raises(InputError, match="changed after") as failure:
        stage(rows[f"{SID}:001"])
    errors.record(failure.value, f"{SID}:001", "PreprocessSource")  # what the adapter does with it

    [record] = spans.failed_sources(errors.read())
    summary = spans.fail(record)
    assert summary["status"] == "failed" and summary["error"].startswith("span 1 (frames 40-80): ")
    markers = read_markers(str(out))
    assert markers[SID]["status"] == "failed" and markers["other"]["status"] == "ok"
    assert not (out / "clips" / f"source_id={SID}").exists() and not (out / "frames" / f"source_id={SID}").exists()
    assert (out / "clips" / "source_id=other" / "part-0.parquet").is_file()
