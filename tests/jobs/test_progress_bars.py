"""Progress on a terminal: bars drawn on stderr from the pipeline's own events, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from musedub.jobs.batch_lines import BatchLines
from musedub.jobs.progress_bars import BatchBars, DubBars
from musedub.pipeline.dub.batch import JobState
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.outcome import JobOutcome
from musedub.pipeline.dub.plan import JobPlan


def job_state(job_id: str, total: int) -> JobState:
    plan = JobPlan(job_id, "v.mp4", "a.wav", "o.mp4", DubOptions(), "w", "25", total, total, total / 25, "", {})
    return JobState(plan, "work")


def terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=120, color_system=None), screen


def test_batch_bars_show_jobs_frames_and_every_ended_job() -> None:
    console, screen = terminal()
    bars = BatchBars(console=console)
    bars.planned(300)
    a, b = job_state("film-a", 200), job_state("film-b", 100)
    bars.segment_done(a, 100)
    bars.segment_done(b, 100)
    bars.job_done(JobOutcome("film-b", "done", "out/b.mp4", frames=100, seconds=3.0))
    bars.job_done(JobOutcome("film-a", "failed", "out/a.mp4", error="video out/a.mp4 is corrupt"))
    bars.close()
    text = screen.getvalue()
    assert "batch: 1 done, 1 failed, 0 up to date" in text
    assert "200/300 frames" in text and "film-a" in text
    assert "[film-b] committed out/b.mp4" in text and "[film-a] failed: video out/a.mp4 is corrupt" in text


def test_dub_bars_follow_tracking_then_dubbing() -> None:
    console, screen = terminal()
    bars = DubBars(console)
    bars.phase("faces tracked", 250, 500, 40.0)
    bars.phase("faces tracked", 500, 500, 41.0)
    bars.phase("frames dubbed", 250, 500, 5.0)
    bars.close()
    text = screen.getvalue()
    assert "faces tracked" in text and "500/500 frames, 41.0 fps" in text and "250/500 frames, 5.0 fps" in text


def test_without_a_terminal_batch_progress_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    lines = BatchLines()
    lines.planned(300)
    lines.segment_done(job_state("film-a", 200), 100)
    lines.job_done(JobOutcome("film-a", "up to date", "out/a.mp4"))
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays clean for JSON and tables
    assert captured.err.splitlines()[0].startswith("[film-a] 100/200 frames") and "[film-a] up to date" in captured.err
