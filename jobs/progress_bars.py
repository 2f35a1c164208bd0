"""Progress bars on a terminal (stderr) for every long command; plain lines everywhere else.

Bars are drawn on stderr only, so stdout stays clean for JSON and tables. They are fed by the
running pipeline: a batch's bar moves as segments finish, a dub's as chunks are tracked and
segments written, preprocess/index/eval's as items come back or land in the errors table, and
training's as rank 0 posts its steps.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from musedub.infra.webhook import Webhook
from musedub.jobs.batch_lines import LINE_EVERY, BatchLines
from musedub.jobs.item_lines import FailureWatch, ItemLines, Tally
from musedub.pipeline.core.errors import ErrorsTable
from musedub.pipeline.dub.batch import JobState
from musedub.pipeline.dub.outcome import JobOutcome


def on_terminal(stream: TextIO | None = None) -> bool:
    return (stream or sys.stderr).isatty()


def _bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames, {task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class BatchBars(BatchLines):
    """A bar for the batch (jobs done, failed, frames, fps, ETA) and one per job in flight; the
    webhook and the committed/failed lines work as with plain lines."""

    def __init__(self, hook: Webhook | None = None, run_id: str = "", console: Console | None = None) -> None:
        super().__init__(hook, run_id)
        self.console = console or Console(stderr=True)
        self.bars = _bars(self.console)
        self.batch: TaskID | None = None
        self.jobs: dict[str, TaskID] = {}
        self.tracking: TaskID | None = None
        self.rates_said = 0.0
        self.ended = {"done": 0, "failed": 0, "up to date": 0}

    def _describe(self) -> str:
        ended = self.ended
        return f"batch: {ended['done']} done, {ended['failed']} failed, {ended['up to date']} up to date"

    def planned(self, total_frames: int) -> None:
        super().planned(total_frames)
        self.bars.start()
        self.batch = self.bars.add_task(self._describe(), total=total_frames, fps=0.0)

    def tracked(self, frames: int, total: int) -> None:
        if self.tracking is None:
            self.tracking = self.bars.add_task("tracking faces (source)", total=total, fps=0.0)
        rate = frames / max(time.perf_counter() - self.started, 1e-6)
        self.bars.update(self.tracking, completed=frames, fps=rate)

    def segment_done(self, state: JobState, frames: int) -> None:
        self.count(state, frames)
        job = state.plan.job_id
        if job not in self.jobs:
            self.jobs[job] = self.bars.add_task(f"  {escape(job)}", total=state.plan.total, fps=0.0)
        done, rate = self.per_job_rate(job)
        self.bars.update(self.jobs[job], completed=done, fps=rate)
        if self.batch is not None:
            self.bars.update(self.batch, completed=self.frames, fps=self.batch_rate())
        now = time.perf_counter()
        if (rates := self.stage_rates()) and (not self.rates_said or now - self.rates_said >= LINE_EVERY):
            self.rates_said = now  # a line above the bars now and then, not a bar description that squeezes them
            self.console.print(f"stages: {rates}", markup=False, highlight=False)

    def job_done(self, outcome: JobOutcome) -> None:
        self.ended[outcome.status] = self.ended.get(outcome.status, 0) + 1
        task = self.jobs.pop(outcome.job_id, None)
        if task is not None:
            self.bars.remove_task(task)
        if self.batch is not None:
            self.bars.update(self.batch, description=self._describe())
        self.console.print(self.job_line(outcome), markup=False, highlight=False)
        self.notify(outcome)

    def close(self) -> None:
        self.bars.stop()


class DubBars:
    """Two bars for one dub: faces tracked (source frames), then frames dubbed (output frames)."""

    def __init__(self, console: Console | None = None) -> None:
        self.bars = _bars(console or Console(stderr=True))
        self.tasks: dict[str, TaskID] = {}

    def phase(self, name: str, done: int, total: int, fps: float) -> None:
        if not self.tasks:
            self.bars.start()
        if name not in self.tasks:
            self.tasks[name] = self.bars.add_task(name, total=total, fps=0.0)
        self.bars.update(self.tasks[name], completed=done, fps=fps)

    def close(self) -> None:
        self.bars.stop()


class ItemBars(ItemLines):
    """One bar for a run of items or steps (ended/total, failures, rates, ETA); each ended item a
    line above it."""

    def __init__(self, tally: Tally, labels: dict[str, str] | None = None, console: Console | None = None) -> None:
        super().__init__(tally, labels)
        self.console = console or Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=self.console,
            transient=False,
        )
        self.task = self.bars.add_task(tally.what, total=tally.total, detail="")

    def __enter__(self) -> ItemBars:
        self.bars.start()
        super().__enter__()
        return self

    def show(self, head: str) -> None:
        if head:
            self.console.print(head, markup=False, highlight=False)
        self.refresh()

    def refresh(self) -> None:
        with self.lock:
            tally = self.tally
            self.bars.update(self.task, completed=tally.ended, detail=f"{tally.unit}, {tally.detail()}")

    def close(self) -> None:
        super().close()
        self.bars.stop()


def item_progress(tally: Tally, errors: ErrorsTable | None = None, labels: dict[str, str] | None = None) -> ItemLines:
    """Bars on a terminal, lines elsewhere; with `errors`, the run's failures as workers record them."""
    progress = ItemBars(tally, labels) if on_terminal() else ItemLines(tally, labels)
    return progress if errors is None else progress.watch(FailureWatch(errors, progress.failed))
