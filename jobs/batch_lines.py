"""A batch's progress as plain lines: one per finished segment (the job's frames and fps, the
batch's) and one per ended job. They read the same in a terminal, `ray job logs` and CI."""

from __future__ import annotations

import time
from collections import Counter

import typer

from musedub.infra.webhook import Webhook
from musedub.pipeline.dub.batch import JobState
from musedub.pipeline.dub.outcome import JobOutcome
from musedub.pipeline.dub.plan import report_uri

LINE_EVERY = 10.0  # seconds between two tracking lines (a film has hundreds of chunks)
SEGMENT_STAGES = ("Crop", "AudioPrompt", "Generate", "BlendEncode")  # as the stages report their seconds


class BatchLines:
    """Also POSTs each job's end to the webhook, if any."""

    def __init__(self, hook: Webhook | None = None, run_id: str = "") -> None:
        self.hook, self.run_id = hook, run_id
        self.total = 0
        self.frames = 0
        self.per_job: dict[str, tuple[int, float]] = {}  # frames done, time of the first
        self.states: dict[str, JobState] = {}  # each job's state: its stages' busy seconds so far
        self.started = time.perf_counter()
        self.said = 0.0  # when a tracking line was last printed

    def planned(self, total_frames: int) -> None:
        self.total = total_frames
        self.started = time.perf_counter()

    def tracked(self, frames: int, total: int) -> None:
        """A line at the start, every LINE_EVERY s, and at the end of tracking."""
        now = time.perf_counter()
        if not self.said or frames == total or now - self.said >= LINE_EVERY:
            self.said = now
            rate = frames / max(now - self.started, 1e-6)
            typer.echo(f"tracking faces: {frames}/{total} source frames, {rate:.1f} fps", err=True)

    def count(self, state: JobState, frames: int) -> None:
        job = state.plan.job_id
        self.states[job] = state
        done, first = self.per_job.get(job, (0, self.started))
        self.per_job[job] = (done + frames, first)
        self.frames += frames

    def per_job_rate(self, job: str) -> tuple[int, float]:
        """(frames done, frames/s) of a job since the batch's planning ended."""
        done, first = self.per_job[job]
        return done, done / max(time.perf_counter() - first, 1e-6)

    def batch_rate(self) -> float:
        return self.frames / max(time.perf_counter() - self.started, 1e-6)

    def stage_rates(self) -> str:
        """Frames per busy second of each segment stage, summed over its workers and the batch's jobs
        (segments reused from an earlier run count frames but no time, so they are left out)."""
        seconds: Counter[str] = Counter()
        for state in self.states.values():
            seconds.update({k: v for k, v in state.seconds.items() if k in SEGMENT_STAGES})
        frames = self.frames - sum(state.reused_frames for state in self.states.values())
        rates = [f"{name} {frames / seconds[name]:.1f}" for name in SEGMENT_STAGES if seconds[name] > 0]
        return f"busy fps {', '.join(rates)}" if rates else ""

    def segment_done(self, state: JobState, frames: int) -> None:
        self.count(state, frames)
        job = state.plan.job_id
        done, rate = self.per_job_rate(job)
        typer.echo(
            f"[{job}] {done}/{state.plan.total} frames, {rate:.1f} fps"
            f" | batch {self.frames}/{self.total} frames, {self.batch_rate():.1f} fps | {self.stage_rates()}",
            err=True,
        )

    @staticmethod
    def job_line(outcome: JobOutcome) -> str:
        if outcome.status == "done":
            return f"[{outcome.job_id}] committed {outcome.output} ({outcome.seconds:.1f} s of stage time)"
        return f"[{outcome.job_id}] {outcome.status}{': ' + outcome.error if outcome.error else ''}"

    def job_done(self, outcome: JobOutcome) -> None:
        typer.echo(self.job_line(outcome), err=True)
        self.notify(outcome)

    def notify(self, outcome: JobOutcome) -> None:
        if self.hook is not None:
            report = report_uri(outcome.output) if outcome.status == "done" else ""
            body = {"job_id": outcome.job_id, "status": outcome.status, "output": outcome.output, "report": report}
            self.hook.send("job", {"run_id": self.run_id, **body, "error": outcome.error})

    def close(self) -> None:
        """Nothing to tear down for lines."""
