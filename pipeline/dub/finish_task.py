"""A job's state through a batch, and the task that finishes a job (stitch, commit, report), in a
module of their own: Ray imports a task's module on the worker that runs it, and stitching needs
media and storage code, not the dubbing stages' models (a preview, when asked for, imports its own)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musedub.infra.storage import commit_file, fetch_file, join_uri, remove_tree
from musedub.pipeline.core.errors import ErrorsTable
from musedub.pipeline.dub.outcome import JobOutcome
from musedub.pipeline.dub.plan import JobPlan, report_uri
from musedub.pipeline.dub.report import make_report, write_report
from musedub.pipeline.face.choice import FaceChoice
from musedub.pipeline.media.stitch import stitch

log = logging.getLogger(__name__)


@dataclass
class JobState:
    plan: JobPlan
    work: str
    choice: FaceChoice | None = None
    faces: dict[str, Any] = field(default_factory=dict)  # the report's account of faces
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    done: set[str] = field(default_factory=set)  # segment ids finished
    reused: int = 0
    reused_frames: int = 0  # of those, frames made by an earlier run (no stage time here)
    style_reference: str = ""  # the style generator's reference file in the work prefix

    def reference_uri(self) -> str:
        return join_uri(self.work, f"style-{self.plan.key}.npz")

    def segment_uri(self, segment_id: str) -> str:
        return join_uri(self.work, f"{segment_id}.mp4")

    def track_name(self, start: int, stop: int) -> str:
        return f"faces-{self.plan.key}-{start}-{stop}.npz"

    @property
    def finished(self) -> bool:
        return len(self.done) == len(self.plan.segments())


def finish_remote(
    state: JobState, random_weights: bool, mask: str, keep_work: bool, errors: ErrorsTable, preview: bool
) -> JobOutcome:
    """Stitch a job's segments, commit the output and its report (and its preview), clear the work prefix."""
    plan = state.plan
    tick = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="musedub-stitch-") as tmp:
            files = [
                fetch_file(state.segment_uri(s.segment_id), Path(tmp) / f"{s.index:06d}.mp4", "segment")
                for s in plan.segments()
            ]
            stitched = Path(tmp) / "stitched.mp4"
            stitch(files, plan.fps_fraction, plan.audio, stitched, plan.audio_identity)
            commit_file(stitched, plan.output, "output")
    except Exception as exc:
        record = errors.record(exc, plan.job_id, "stitch")
        return JobOutcome(plan.job_id, "failed", plan.output, error=record.message)
    seconds = Counter(state.seconds)
    seconds["stitch+commit"] += time.perf_counter() - tick
    segments = len(plan.segments())
    report = make_report(plan, state.statuses, seconds, mask, random_weights, segments, state.reused, state.faces)
    write_report(report)
    if preview:
        try:
            from musedub.pipeline.dub.preview import write_job_preview  # loads a landmark detector's code

            write_job_preview(report_uri(plan.output), plan.weights)
        except Exception as exc:  # the output is committed and fine: a preview never fails its job
            log.warning("job %s: no preview (%s)", plan.job_id, exc)
    if not keep_work:
        remove_tree(state.work)
    return JobOutcome(
        plan.job_id,
        "done",
        plan.output,
        frames=plan.total,
        seconds=sum(v for k, v in seconds.items()),
        segments_run=segments - state.reused,
        segments_reused=state.reused,
    )
