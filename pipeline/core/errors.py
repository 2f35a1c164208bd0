"""One failure policy for every command: a failed item becomes an `ErrorRecord` in its run's errors
table, a Parquet dataset of one-row parts under `RUN/errors/`, written by whichever worker saw
the failure (so several nodes can write at once without a coordinator) and read as one table.

Messages are one line: a `MusedubError` keeps its own text (it names the input and the fix); any
other exception is a bug on that input and keeps its type name.
"""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from musedub.infra.errors import MusedubError
from musedub.infra.storage import join_uri, list_files, read_bytes, write_bytes_atomic

ERRORS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("item_id", pa.string()),  # the row's own id: a job, a segment, a source
        ("stage", pa.string()),  # where it failed: plan, Crop, Generate, stitch, PreprocessSource, ...
        ("error_class", pa.string()),
        ("message", pa.string()),  # one line, naming the input and the fix
        ("time", pa.float64()),  # UNIX seconds
    ]
)


def one_line(text: str) -> str:
    """Newlines and other control characters would let one input forge lines of a log or a table."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


@dataclass(frozen=True)
class ErrorRecord:
    run_id: str
    item_id: str
    stage: str
    error_class: str
    message: str
    time: float = field(default_factory=time.time)

    @classmethod
    def from_exception(cls, exc: BaseException, run_id: str, item_id: str, stage: str) -> ErrorRecord:
        text = str(exc) if isinstance(exc, MusedubError) else f"{type(exc).__name__}: {exc}"
        return cls(run_id, item_id, stage, type(exc).__name__, one_line(text))


@dataclass(frozen=True)
class ErrorsTable:
    """The errors table of one run: `RUN/errors/part-*.parquet`."""

    run: str  # the run's folder (local path or URI)
    run_id: str

    @property
    def uri(self) -> str:
        return join_uri(self.run, "errors")

    def record(self, exc: BaseException, item_id: str, stage: str) -> ErrorRecord:
        record = ErrorRecord.from_exception(exc, self.run_id, item_id, stage)
        self.write(record)
        return record

    def write(self, record: ErrorRecord) -> None:
        part = uuid.uuid5(uuid.NAMESPACE_URL, f"{record.run_id}/{record.item_id}/{record.stage}")
        table = pa.Table.from_pylist([asdict(record)], schema=ERRORS_SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        write_bytes_atomic(join_uri(self.uri, f"part-{part}.parquet"), buffer.getvalue(), "errors table")

    def read(self, seen: set[str] | None = None) -> list[ErrorRecord]:
        """Every record; with `seen` (part names, extended here) only those of parts not read before,
        so a run's failures can be followed while it goes without reading a part twice."""
        parts = sorted(n for n in list_files(self.uri) if n.endswith(".parquet") and n not in (seen or ()))
        if seen is not None:
            seen.update(parts)
        rows = []
        for name in parts:
            table = pq.read_table(io.BytesIO(read_bytes(join_uri(self.uri, name), "errors table")))
            rows.extend(table.cast(ERRORS_SCHEMA).to_pylist())
        return sorted((ErrorRecord(**row) for row in rows), key=lambda r: (r.time, r.item_id))
