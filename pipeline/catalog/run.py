"""Where a catalogue's bookkeeping lives under its output prefix, and the record of one run.

`<prefix>/.musedub-catalog/lease/`        the lease that keeps two runs from dubbing one job
`<prefix>/.musedub-catalog/plans/T.jsonl` manifests written by `catalog plan`
`<prefix>/.musedub-catalog/runs/T-ID.json` what each `catalog run` did
`<prefix>/.musedub-catalog/runs/T-ID/errors/` its errors table (Parquet)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from musedub.infra.storage import join_uri, write_bytes_atomic
from musedub.pipeline.core.run import Run
from musedub.pipeline.dub.outcome import JobOutcome

FOLDER = ".musedub-catalog"


def lease_prefix(output_prefix: str) -> str:
    return join_uri(output_prefix, FOLDER, "lease")


def stamp(when: float) -> str:
    """A UTC time that sorts as text and is safe in object names."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H-%M-%SZ")


def plan_uri(output_prefix: str, when: float) -> str:
    return join_uri(output_prefix, FOLDER, "plans", f"{stamp(when)}.jsonl")


@dataclass
class RunRecord:
    run_id: str
    catalog: str
    output_prefix: str
    started: float
    status: str = "running"  # done, failed (a job failed or a row was bad), skipped (another run held the lease)
    plan: dict[str, int] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    finished: float = 0.0

    def finish(self, status: str, outcomes: Sequence[JobOutcome] = (), note: str = "") -> None:
        self.status, self.note, self.finished = status, note, time.time()
        self.jobs = [asdict(o) for o in outcomes]

    @property
    def name(self) -> str:
        return f"{stamp(self.started)}-{self.run_id}"

    @property
    def uri(self) -> str:
        return join_uri(self.output_prefix, FOLDER, "runs", f"{self.name}.json")

    def batch_run(self) -> Run:
        """The batch's run folder (errors table) beside this record."""
        return Run(join_uri(self.output_prefix, FOLDER, "runs"), self.name)

    def write(self) -> str:
        body = {
            **asdict(self),
            "started_utc": stamp(self.started),
            "seconds": round(self.finished - self.started, 3),
        }
        write_bytes_atomic(self.uri, json.dumps(body, indent=2).encode(), "run record")
        return self.uri
