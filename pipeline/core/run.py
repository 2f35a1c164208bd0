"""A run of a command over many items: its id, its folder, its errors table and its summary.

`ROOT/<run_id>/errors/part-*.parquet` and `ROOT/<run_id>/summary.json`; run ids sort by start
time (UTC) and are safe in object names.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from musedub.infra.storage import join_uri, write_bytes_atomic
from musedub.pipeline.core.errors import ErrorsTable

RUNS_FOLDER = ".musedub-runs"


def parent_uri(uri: str) -> str:
    return str(PurePosixPath(uri).parent) if "://" not in uri else uri.rsplit("/", 1)[0]


def runs_beside(uri: str) -> str:
    """The runs folder next to an output: on the same store, writable by every worker."""
    return join_uri(parent_uri(uri), RUNS_FOLDER)


def new_run_id() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Run:
    root: str  # where runs of this command are kept, e.g. `<output prefix>/.musedub-runs`
    run_id: str = field(default_factory=new_run_id)

    @property
    def uri(self) -> str:
        return join_uri(self.root, self.run_id)

    @classmethod
    def at(cls, folder: str) -> Run:
        """The run whose folder is `folder` (`ROOT/<run_id>`), as a command printed it."""
        folder = folder.rstrip("/")
        return cls(parent_uri(folder), folder.rsplit("/", 1)[-1])

    @property
    def errors(self) -> ErrorsTable:
        return ErrorsTable(self.uri, self.run_id)

    @property
    def summary_uri(self) -> str:
        return join_uri(self.uri, "summary.json")

    def write_summary(self, summary: dict[str, Any]) -> str:
        body = {"run_id": self.run_id, **summary}
        write_bytes_atomic(self.summary_uri, json.dumps(body, indent=2, sort_keys=True).encode(), "run summary")
        return self.summary_uri
