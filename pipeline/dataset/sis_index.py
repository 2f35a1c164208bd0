"""`musedub index`: the SIS candidate sets of every clip, one Parquet shard per clips part beside them.

A source of one part is one row; a source preprocessed in spans is a row per part, each read and
written alone (a clip never spans two parts), and the driver writes its marker once all are in.
A source is indexed again only when its clips or the SIS settings change: `_sis/ID.json` holds
the key (the source's preprocess checksum and settings, plus the SIS settings).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from musedub.infra.storage import exists, join_uri, read_bytes, write_bytes_atomic
from musedub.pipeline.core.ray_adapter import map_items
from musedub.pipeline.core.run import Run
from musedub.pipeline.core.stage import ITEM_ID, Resources, Row
from musedub.pipeline.dataset.sis import SisSettings, candidate_sets, normalise_to_crop
from musedub.pipeline.dataset.tables import (
    SIS_SCHEMA,
    WHOLE,
    column_array,
    part_item,
    read_markers,
    read_table,
    require_dataset,
    source_parts,
    table_uri,
    write_table,
)

SIS_MARKERS = "_sis"
PART, PARTS = "part", "parts"  # a row of a source of several parts


def sis_key(settings: SisSettings, marker: dict[str, Any]) -> str:
    text = json.dumps([settings.model_dump(), marker["checksum"], marker["settings"]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sis_marker_uri(out: str, sid: str) -> str:
    return join_uri(out, SIS_MARKERS, f"{sid}.json")


def write_sis_marker(out: str, sid: str, key: str) -> None:
    write_bytes_atomic(sis_marker_uri(out, sid), json.dumps({"key": key}).encode(), "SIS marker")


def clip_sis_rows(clips: pa.Table, row: int, settings: SisSettings) -> dict[str, list]:
    """The SIS rows of clip `row` of a clips table: one per frame."""
    n = clips.column("frames")[row].as_py()
    landmarks = column_array(clips, "landmarks", row, np.float32, (n, 68, 2))
    boxes = column_array(clips, "boxes", row, np.int32, (n, 4))
    candidates, fallback = candidate_sets(normalise_to_crop(landmarks, boxes), settings)
    start = clips.column("start")[row].as_py()
    return {
        "clip_id": [clips.column("clip_id")[row].as_py()] * n,
        "frame": list(range(start, start + n)),
        "candidates": [c.tolist() for c in candidates],
        "fallback": fallback.tolist(),
    }


@dataclass
class SisStage:
    settings: SisSettings
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))

    def setup(self) -> None:
        """Nothing to load: the index is geometry on stored landmarks."""

    def __call__(self, row: Row) -> Row:
        out, sid, part = row["out"], row["source_id"], row.get(PART, WHOLE)
        clips = read_table(table_uri(out, "clips", sid, part), ["clip_id", "start", "frames", "landmarks", "boxes"])
        columns: dict[str, list] = {name: [] for name in SIS_SCHEMA.names}
        for index in range(clips.num_rows):
            for name, values in clip_sis_rows(clips, index, self.settings).items():
                columns[name].extend(values)
        write_table(table_uri(out, "sis", sid, part), pa.table(columns, schema=SIS_SCHEMA))
        if PART not in row:  # a part's source is finished by the driver (run_index)
            write_sis_marker(out, sid, row["key"])
        return {**row, "frames": len(columns["frame"]), "fallback": int(sum(columns["fallback"]))}


def plan_index(out: str, settings: SisSettings) -> tuple[list[dict[str, Any]], int]:
    """Rows of the sources whose SIS shards are missing or stale (a row per part of a source of
    several), and how many sources are current."""
    markers = read_markers(out)
    todo, current = [], 0
    for sid in require_dataset(out):
        key = sis_key(settings, markers[sid])
        marker = sis_marker_uri(out, sid)
        if exists(marker) and json.loads(read_bytes(marker, "SIS marker"))["key"] == key:
            current += 1
            continue
        row = {ITEM_ID: sid, "out": out, "source_id": sid, "key": key}
        parts = source_parts(markers[sid])
        if parts == [WHOLE]:
            todo.append(row)
        else:
            todo.extend({**row, ITEM_ID: part_item(sid, p), PART: p, PARTS: len(parts)} for p in parts)
    return todo, current


def run_index(todo: list[dict[str, Any]], settings: SisSettings, run: Run) -> Iterator[dict[str, Any]]:
    """Index the sources on the Ray cluster, a result per source as it finishes; failures go to the
    run's errors table (a source with a failed part gets no marker, so a rerun redoes it)."""
    yield from join_parts(map_items(todo, partial(SisStage, settings), run.errors))


def join_parts(results: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Stage results -> one per source: a whole source's as it is; a source of several parts once
    its last part is in, its marker written then, its frames and fallbacks summed."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        if PART not in result:
            yield result
            continue
        got = parts.setdefault(result["source_id"], [])
        got.append(result)
        if len(got) == result[PARTS]:
            write_sis_marker(result["out"], result["source_id"], result["key"])
            totals = {k: sum(r[k] for r in got) for k in ("frames", "fallback")}
            rest = {k: v for k, v in result.items() if k not in (PART, PARTS)}
            yield {**rest, ITEM_ID: result["source_id"], **totals}
