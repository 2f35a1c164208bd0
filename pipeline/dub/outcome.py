"""What a batch of dubbing jobs returns: one outcome per job, the run's id and errors table."""

from __future__ import annotations

from dataclasses import dataclass, field

from musedub.pipeline.core.errors import ErrorRecord


@dataclass
class JobOutcome:
    job_id: str
    status: str  # done, up to date, failed
    output: str
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    segments_run: int = 0
    segments_reused: int = 0


@dataclass
class BatchResult:
    run_id: str
    run_uri: str  # the run's folder: errors/ (Parquet) and summary.json
    outcomes: list[JobOutcome]
    errors: list[ErrorRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        return {s: sum(o.status == s for o in self.outcomes) for s in ("done", "up to date", "failed")}
