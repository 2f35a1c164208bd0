"""Where a preprocessed training set lives and how its Parquet tables are written and read.

    OUT/clips/source_id=ID/part-0.parquet    one row per clip, frame-level arrays flattened
    OUT/frames/source_id=ID/part-0.parquet   one row per frame: 256x256 crop as JPEG (optional)
    OUT/sis/source_id=ID/part-0.parquet      one row per frame: SIS reference candidates
    OUT/_sources/ID.json                     written last: the source is finished (or failed)
    OUT/_runs/RUN/errors/part-*.parquet      each preprocess or index run's errors table

Hive-style partitions, so `ray.data.read_parquet(OUT/clips)` and pyarrow datasets see source_id
as a column. One file per source per table, named by the source, so a rerun overwrites rather
than adds; a source cut into spans (`PreprocessSettings.shard_seconds`) has one file per span,
part-000.parquet, part-001.parquet, ..., and its clip ids name their span (`ID-001-0003`), so a
reader finds a clip's file from its id alone.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from musedub.infra.errors import InputError
from musedub.infra.storage import exists, join_uri, list_files, read_bytes, remove_tree, write_bytes_atomic

# The schemas of the dataset's tables: writers write with them, readers select from them, and the
# end-to-end test checks every table written against them.
QUALITY_COLUMNS = ("face_min_px", "face_median_px", "jitter", "mouth_motion", "speech_fraction", "sharpness")
CLIP_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("source", pa.string()),
        ("clip_id", pa.string()),
        ("start", pa.int32()),
        ("stop", pa.int32()),
        ("frames", pa.int32()),
        ("shot", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("landmarks", pa.list_(pa.float32())),  # (n, 68, 2) in source pixels
        ("boxes", pa.list_(pa.int32())),  # (n, 4) crop box without bottom margin
        ("crop_bottom", pa.list_(pa.int32())),  # (n,) bottom edge of the stored crop
        ("audio", pa.list_(pa.float32())),  # (n * 640,) 16 kHz mono
        ("whisper", pa.binary()),  # float16 (2n + 8, L+1, D) or null
        ("whisper_shape", pa.list_(pa.int32())),
        ("stage2_ok", pa.bool_()),
        ("flags", pa.list_(pa.string())),
        *[(name, pa.float64()) for name in QUALITY_COLUMNS],
    ]
)
CLIP_COLUMNS = tuple(CLIP_SCHEMA.names)
FRAME_SCHEMA = pa.schema([("clip_id", pa.string()), ("frame", pa.int32()), ("crop", pa.binary())])  # crop: JPEG
SIS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("frame", pa.int32()),  # 25 fps source frame
        ("candidates", pa.list_(pa.int32())),  # offsets within the clip
        ("fallback", pa.bool_()),
    ]
)
SCHEMAS = {"clips": CLIP_SCHEMA, "frames": FRAME_SCHEMA, "sis": SIS_SCHEMA}
TABLES = tuple(SCHEMAS)
MARKERS = "_sources"
RUNS = "_runs"


def source_id(relative_path: str) -> str:
    """Stable id of a source from its path under the dataset root: 16 hex of its sha256."""
    return hashlib.sha256(relative_path.encode()).hexdigest()[:16]


WHOLE = "0"  # the part name of a source processed as one row


def span_part(span: int) -> str:
    """The part name of span `span` of a source cut into spans."""
    return f"{span:03d}"


def clip_id(sid: str, index: int, span: int | None = None) -> str:
    """`ID-0003` for a whole source's clip 3; `ID-001-0003` for clip 3 of span 1."""
    return f"{sid}-{index:04d}" if span is None else f"{sid}-{span_part(span)}-{index:04d}"


def part_item(sid: str, part: str) -> str:
    """The item id of the row that writes one part of a source of several."""
    return f"{sid}:{part}"


def source_of(item_id: str) -> str:
    """The source a row's item id belongs to (a whole source's item id is its source id)."""
    return item_id.split(":", 1)[0]


def clip_part(clip: str) -> str:
    """The part file that holds a clip's rows, from its id."""
    fields = clip.split("-")
    return fields[1] if len(fields) == 3 else WHOLE


def source_parts(marker: dict[str, Any]) -> list[str]:
    """The part names a finished source wrote, from its marker."""
    spans = marker.get("spans", 0)
    return [span_part(k) for k in range(spans)] if spans else [WHOLE]


def source_uri(out: str, table: str, sid: str) -> str:
    """The folder of a source's parts of a table: read whole, it is every clip of the source."""
    return join_uri(out, table, f"source_id={sid}")


def table_uri(out: str, table: str, sid: str, part: str = WHOLE) -> str:
    return join_uri(source_uri(out, table, sid), f"part-{part}.parquet")


def clip_table_uri(out: str, table: str, sid: str, clip: str) -> str:
    """The file of a table that holds clip `clip`'s rows."""
    return table_uri(out, table, sid, clip_part(clip))


def marker_uri(out: str, sid: str) -> str:
    return join_uri(out, MARKERS, f"{sid}.json")


ROW_GROUP = 256  # rows per row group: training reads one clip's frames without the whole shard


def write_table(uri: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=ROW_GROUP)
    write_bytes_atomic(uri, buffer.getvalue(), "dataset shard")


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(uri, "dataset shard")), columns=columns)


def remove_source_tables(out: str, sid: str, keep: tuple[str, ...] = ()) -> None:
    """Drop a source's shards of every table not in `keep` (a rerun with other settings)."""
    for table in TABLES:
        if table not in keep:
            remove_tree(source_uri(out, table, sid))


def write_marker(out: str, sid: str, record: dict[str, Any]) -> None:
    write_bytes_atomic(marker_uri(out, sid), json.dumps(record, sort_keys=True).encode(), "source marker")


def read_markers(out: str) -> dict[str, dict[str, Any]]:
    """Every finished or failed source's record, by source id."""
    folder = join_uri(out, MARKERS)
    records = {}
    for name in list_files(folder):
        if name.endswith(".json"):
            records[name.removesuffix(".json")] = json.loads(read_bytes(join_uri(folder, name), "source marker"))
    return records


def source_ids(out: str) -> list[str]:
    """Sources that finished with at least one clip."""
    return sorted(sid for sid, r in read_markers(out).items() if r.get("status") == "ok" and r.get("clips", 0) > 0)


def require_dataset(out: str) -> list[str]:
    """The usable sources of a preprocessed dataset, or an error saying how to make one."""
    if not exists(join_uri(out, MARKERS)):
        raise InputError(f"dataset {out} has no {MARKERS}/ records: run `musedub preprocess SRC {out}` first")
    ids = source_ids(out)
    if not ids:
        raise InputError(f"dataset {out} holds no clips: check `musedub preprocess` output and its errors table")
    return ids


def flat(array: np.ndarray, dtype: type) -> list:
    """An array as a flat Python list for a list<...> column (numpy -> Arrow copies once)."""
    return np.asarray(array, dtype=dtype).reshape(-1).tolist()


def column_array(table: pa.Table, column: str, row: int, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """Cell `row` of a list<...> column as an array of `shape`."""
    values = table.column(column)[row].values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=dtype).reshape(shape)
