"""`musedub preprocess` as a plan and a Ray Data run: which sources need work, then one actor call
per source (per span of a long source: spans.py), and a summary of what was kept and dropped.

A source is skipped when its marker carries the same checksum and settings key, so a rerun over
the same folder writes nothing; `retry_failed` tries failed sources again. A source done again
loses its old parts and marker before the run starts, so no part of an earlier cut outlives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from musedub.infra.errors import InputError
from musedub.infra.storage import checksum, join_uri, list_tree, remove_tree, validate_uri
from musedub.pipeline.core.ray_adapter import map_items
from musedub.pipeline.core.run import Run
from musedub.pipeline.core.stage import ITEM_ID
from musedub.pipeline.dataset.clip_cut import DROP_REASONS
from musedub.pipeline.dataset.settings import TRAIN_FPS, PreprocessSettings
from musedub.pipeline.dataset.source import PreprocessSourceStage, failed_summary
from musedub.pipeline.dataset.span_results import SourceSpans
from musedub.pipeline.dataset.spans import SPAN, shard_rows
from musedub.pipeline.dataset.tables import RUNS, marker_uri, read_markers, remove_source_tables, source_id
from musedub.pipeline.media.probe import VIDEO_SUFFIXES


@dataclass
class PreprocessPlan:
    todo: list[dict[str, Any]]  # rows: one per source, or one per span of a long source
    out: str = ""
    done: list[dict[str, Any]] = field(default_factory=list)  # markers of sources left as they are
    stale: list[str] = field(default_factory=list)  # sources in `todo` with outputs of an earlier run
    work: str = ""  # where planning saved media indexes for the run

    @property
    def sources(self) -> dict[str, str]:
        """Source id -> URI of every source to process."""
        return {row["source_id"]: row["source"] for row in self.todo}


def plan_preprocess(
    src: str, out: str, settings: PreprocessSettings, retry_failed: bool = False, work: str = ""
) -> PreprocessPlan:
    """Sources under `src` (a folder or bucket prefix, searched recursively) against `out`'s markers.
    With `work` (a folder every worker reads: the run's), sources longer than `shard_seconds` are
    probed and cut into span rows; without it, every source is one row."""
    validate_uri(src, "source folder")
    validate_uri(out, "output folder")
    if src.rstrip("/") == out.rstrip("/") or out.rstrip("/").startswith(src.rstrip("/") + "/"):
        raise InputError(f"output {out} lies inside the source folder {src}: write the dataset elsewhere")
    names = [n for n in list_tree(src) if PurePosixPath(n).suffix.lower() in VIDEO_SUFFIXES]
    if not names:
        raise InputError(f"source folder {src} holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))}): check the path")
    markers = read_markers(out)
    plan = PreprocessPlan(todo=[], out=out)
    key = settings.key()
    for name in names:
        uri = join_uri(src, name)
        sid = source_id(name)
        digest = checksum(uri, "source video")
        marker = markers.get(sid)
        fresh = marker is not None and marker["checksum"] == digest and marker["settings"] == key
        if fresh and (marker["status"] == "ok" or not retry_failed):
            plan.done.append(marker)
        else:
            plan.todo.append({ITEM_ID: sid, "source": uri, "source_id": sid, "checksum": digest, "out": out})
            if marker is not None:
                plan.stale.append(sid)
    if work and plan.todo:
        plan.todo, plan.work = shard_rows(plan.todo, settings, work), work
        sharded = {row["source_id"] for row in plan.todo if SPAN in row}  # parts of a crashed run may linger
        plan.stale += sorted(sharded - set(plan.stale))
    return plan


def run_preprocess(
    plan: PreprocessPlan, settings: PreprocessSettings, run: Run, report: Callable[[dict], None]
) -> list[dict[str, Any]]:
    """Process the plan's sources on the Ray cluster; `report(summary)` as each one finishes (a
    sharded source when its last span does). A source that failed (or one of whose spans did) is
    in the run's errors table and gets a failed summary here."""
    results = []

    def finished(summary: dict[str, Any]) -> None:
        results.append(summary)
        report(summary)

    for sid in plan.stale:
        remove_source_tables(plan.out, sid)
        remove_tree(marker_uri(plan.out, sid))
    spans = SourceSpans(plan.todo, settings)
    try:
        for summary in map_items(plan.todo, partial(PreprocessSourceStage, settings), run.errors):
            if SPAN not in summary:
                finished(summary)
            elif (source := spans.add(summary)) is not None:
                finished(source)
        records = run.errors.read()
        for record in spans.failed_sources(records):
            finished(spans.fail(record))
        rows = {row[ITEM_ID]: row for row in plan.todo}
        for record in records:
            if not spans.is_span(record.item_id):
                finished(failed_summary(rows[record.item_id], settings, record.message))
    finally:
        if plan.work:
            remove_tree(join_uri(plan.work, "media"))
    return results


def runs_root(out: str) -> str:
    """Runs of preprocess and index over a dataset are kept in it."""
    return join_uri(out, RUNS)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over source markers: sources by status, clips, hours kept and dropped by reason."""
    frame_hours = 1 / (float(TRAIN_FPS) * 3600)
    dropped = dict.fromkeys(DROP_REASONS, 0)
    for record in records:
        for reason, count in json.loads(record.get("dropped") or "{}").items():
            dropped[reason] = dropped.get(reason, 0) + count
    failed = [r for r in records if r["status"] == "failed"]
    kept = sum(r["kept"] for r in records)
    return {
        "sources": len(records),
        "failed": len(failed),
        "clips": sum(r["clips"] for r in records),
        "frames": sum(r["frames"] for r in records),
        "frames_kept": kept,
        "frames_dropped": dropped,
        "hours_kept": round(kept * frame_hours, 4),
        "hours_dropped": {reason: round(count * frame_hours, 4) for reason, count in dropped.items()},
        "errors": {r["source"]: r["error"] for r in failed},
    }
