"""The driver's check for usable clips before a run: which rows count, what it reads, its error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3_proxy import ObjectCounts

from musedub.infra.errors import InputError
from musedub.infra.storage import join_uri, write_bytes_atomic
from musedub.pipeline.dataset.tables import CLIP_SCHEMA, table_uri, write_marker, write_table
from musedub.pipeline.train.run import clips_dataset, has_usable_clip

AUDIO = 200_000  # float32 samples of noise per clip: the bulk of a shard, as real audio is


def write_clips(out: str, clips: dict[str, list[tuple[float | None, int]]]) -> None:
    """One finished source per key, a clip row per (face_min_px, frames), shards as preprocess writes them."""
    rng = np.random.default_rng(0)
    for sid, rows in clips.items():
        records = [
            {"source_id": sid, "clip_id": f"{sid}-{i}", "face_min_px": px, "frames": n, "audio": rng.random(AUDIO)}
            for i, (px, n) in enumerate(rows)
        ]
        write_table(table_uri(out, "clips", sid), pa.Table.from_pylist(records, schema=CLIP_SCHEMA))
        write_marker(out, sid, {"status": "ok", "clips": len(rows)})


# every row misses one minimum of (face 100 px, 50 frames); b's first row meets (90, 80) exactly
CLIPS = {"a": [(120.0, 40)], "b": [(90.0, 80), (None, 100)]}


def test_a_clip_counts_when_it_reaches_every_minimum(tmp_path: Path) -> None:
    out = str(tmp_path / "dataset")
    write_clips(out, CLIPS)
    clips = join_uri(out, "clips")
    assert not has_usable_clip(clips, {"face_min_px": 100, "frames": 50})
    assert has_usable_clip(clips, {"face_min_px": 90, "frames": 80})
    assert not has_usable_clip(clips, {"face_min_px": 90.5, "frames": 80})
    # only .parquet files are the table (as for the Ray read): an unfinished write beside a shard is not
    partial = tmp_path / "dataset" / "clips" / "source_id=a" / ".part-0.parquet.abc.partial"
    pq.write_table(pa.Table.from_pylist([{"face_min_px": 200.0, "frames": 200}], schema=CLIP_SCHEMA), partial)
    assert not has_usable_clip(clips, {"face_min_px": 100, "frames": 50})
    with pytest.raises(InputError) as error:
        clips_dataset(out, 100, 50, needs_sis=False)
    assert str(error.value) == (
        f"dataset {out} has no clip of at least 50 frames with faces of 100 px or more: "
        "lower min_face or preprocess larger faces"
    )


def test_on_s3_the_check_reads_two_columns_and_stops_at_a_usable_clip(s3_bucket: str, s3_counts: ObjectCounts) -> None:
    out = f"s3://{s3_bucket}/dataset"
    write_clips(out, CLIPS)
    write_bytes_atomic(join_uri(out, "clips", "notes.txt"), b"not a shard", "test file")
    shards = {sid: f"dataset/clips/source_id={sid}/part-0.parquet" for sid in CLIPS}
    size = 4 * AUDIO  # a shard holds at least one clip's audio
    s3_counts.reset()
    assert not has_usable_clip(join_uri(out, "clips"), {"face_min_px": 100, "frames": 50})
    for key in shards.values():
        fetched, gets, _ = s3_counts.of(s3_bucket, key)
        assert gets > 0 and fetched < size / 4, (key, fetched, gets)
    assert s3_counts.of(s3_bucket, "dataset/clips/notes.txt")[1] == 0

    s3_counts.reset()
    assert has_usable_clip(join_uri(out, "clips"), {"face_min_px": 100, "frames": 40})  # a's clip
    assert s3_counts.of(s3_bucket, shards["a"])[1] > 0
    assert s3_counts.of(s3_bucket, shards["b"]) == (0, 0, 0)  # never opened
