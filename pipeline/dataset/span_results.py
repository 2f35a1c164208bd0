"""The driver's side of a source cut into spans: its marker once every span is in, summed from the
spans' summaries; or, when a span failed, a 'failed' marker and none of its parts left.

Only the driver sees all of a source's spans, so only it can say the source is finished; spans run
in parallel and never touch each other's parts.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from musedub.pipeline.core.errors import ErrorRecord
from musedub.pipeline.core.stage import Row
from musedub.pipeline.dataset.settings import PreprocessSettings
from musedub.pipeline.dataset.source import failed_summary
from musedub.pipeline.dataset.spans import SPAN, SPANS, START, STOP
from musedub.pipeline.dataset.tables import remove_source_tables, source_of, write_marker

SUMMED = ("clips", "frames", "kept")


def join_spans(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """Span summaries of one source -> the source's: counts and drops summed, work time summed."""
    dropped: Counter[str] = Counter()
    for span in spans:
        dropped.update(json.loads(span["dropped"]))
    first = spans[0]
    return {
        **{k: v for k, v in first.items() if k not in (SPAN, *SUMMED, "dropped", "elapsed")},
        **{k: sum(s[k] for s in spans) for k in SUMMED},
        "dropped": json.dumps(dict(dropped), sort_keys=True),
        "elapsed": round(sum(s["elapsed"] for s in spans), 3),
    }


class SourceSpans:
    """Span summaries collected by source as they finish; failures turned into failed sources."""

    def __init__(self, rows: list[Row], settings: PreprocessSettings) -> None:
        self.settings = settings
        self.spans = {row["item_id"]: row for row in rows if SPAN in row}
        self.received: dict[str, list[dict[str, Any]]] = {}

    def is_span(self, item_id: str) -> bool:
        return item_id in self.spans

    def add(self, summary: dict[str, Any]) -> dict[str, Any] | None:
        """A span's summary -> its source's, written as the source's marker, when it was the last one."""
        got = self.received.setdefault(summary["source_id"], [])
        got.append(summary)
        if len(got) < summary[SPANS]:
            return None
        source = join_spans(sorted(got, key=lambda s: s[SPAN]))
        write_marker(self.spans_row(summary["source_id"])["out"], summary["source_id"], source)
        return source

    def spans_row(self, sid: str) -> Row:
        return next(row for row in self.spans.values() if row["source_id"] == sid)

    def fail(self, record: ErrorRecord) -> dict[str, Any]:
        """A failed span fails its source: every part the other spans wrote goes, the marker says why."""
        row = self.spans[record.item_id]
        message = f"span {row[SPAN]} (frames {row[START]}-{row[STOP]}): {record.message}"
        remove_source_tables(row["out"], row["source_id"])
        summary = {**failed_summary(row, self.settings, message), SPANS: row[SPANS]}
        write_marker(row["out"], row["source_id"], summary)
        return summary

    def failed_sources(self, records: list[ErrorRecord]) -> list[ErrorRecord]:
        """The first failed span of each sharded source that has one."""
        first: dict[str, ErrorRecord] = {}
        for record in records:
            if self.is_span(record.item_id):
                first.setdefault(source_of(record.item_id), record)
        return list(first.values())
