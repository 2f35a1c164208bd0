"""The JSON report written beside every output, and the check that an output is already current."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from musedub.infra.errors import InputError
from musedub.infra.storage import exists, read_bytes, write_bytes_atomic
from musedub.pipeline.dub.plan import JobPlan, report_uri
from musedub.pipeline.face.crop_geometry import FaceStatus


@dataclass
class DubReport:
    """What a job did: its plan, the faces found, seconds per stage, the mask and model used."""

    plan: dict[str, Any]
    faces: dict[str, int]
    seconds: dict[str, float]
    mask: str
    models: dict[str, Any]
    segments: int
    segments_reused: int = 0
    speakers: dict[str, Any] = field(default_factory=dict)  # tracks, the spans dubbed and why, dub rests

    @property
    def output_frames(self) -> int:
        return int(self.plan["output_frames"])

    @property
    def fps(self) -> str:
        return str(self.plan["fps"])

    def to_json(self) -> str:
        body = {**self.plan, **{k: v for k, v in self.__dict__.items() if k != "plan"}}
        return json.dumps(body, indent=2, sort_keys=True)


def face_counts(statuses: Counter[str]) -> dict[str, int]:
    return {s.name.lower(): statuses.get(s.name.lower(), 0) for s in FaceStatus}


def make_report(
    plan: JobPlan,
    statuses: Counter[str],
    seconds: dict[str, float],
    mask: str,
    random_weights: bool,
    segments: int,
    reused: int = 0,
    faces: dict[str, Any] | None = None,
) -> DubReport:
    return DubReport(
        plan=plan.report_fields(),
        faces=face_counts(statuses),
        seconds={k: round(v, 3) for k, v in seconds.items()},
        mask=mask,
        models={
            "generator": plan.options.generator,
            "unet": plan.options.version,
            "weights": plan.weights,
            "random_weights": random_weights,
        },
        segments=segments,
        segments_reused=reused,
        speakers=faces or {},
    )


def write_report(report: DubReport) -> None:
    write_bytes_atomic(report_uri(report.plan["output"]), report.to_json().encode(), "report")


def existing_report(output: str) -> dict[str, Any] | None:
    """The report beside a committed output; None when either is missing or it is unreadable."""
    uri = report_uri(output)
    if not exists(uri) or not exists(output):
        return None
    try:
        report = json.loads(read_bytes(uri, "report"))
    except (InputError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def committed_report(plan: JobPlan) -> dict[str, Any] | None:
    """The report of an output made from exactly this plan (same inputs, options, weights), if any."""
    report = existing_report(plan.output)
    return report if report is not None and report.get("job_key") == plan.key else None
