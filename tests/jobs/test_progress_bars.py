"""Progress on a terminal: bars drawn on stderr from the pipeline's own events, plain lines elsewhere."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console

from musedub.infra.errors import InputError
from musedub.jobs.batch_lines import BatchLines
from musedub.jobs.item_lines import FailureWatch, ItemLines, Tally
from musedub.jobs.progress_bars import BatchBars, DubBars, ItemBars
from musedub.pipeline.core.errors import ErrorsTable
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
    bars.tracked(0, 300)  # the first phase moves from its first second
    bars.tracked(300, 300)
    a, b = job_state("film-a", 200), job_state("film-b", 100)
    a.seconds.update({"TrackFaces": 9.0, "Crop": 0.5, "Generate": 4.0})  # as the segment rows report them
    bars.segment_done(a, 100)
    bars.segment_done(b, 100)
    bars.job_done(JobOutcome("film-b", "done", "out/b.mp4", frames=100, seconds=3.0))
    bars.job_done(JobOutcome("film-a", "failed", "out/a.mp4", error="video out/a.mp4 is corrupt"))
    bars.close()
    text = screen.getvalue()
    assert "batch: 1 done, 1 failed, 0 up to date" in text
    assert "tracking faces (source)" in text and "300/300 frames" in text
    assert "stages: busy fps Crop 200.0, Generate 25.0" in text  # 100 frames over each stage's busy seconds
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
    for tracked in (0, 100, 200, 300):  # a line at once, at most one per 10 s, and the last
        lines.tracked(tracked, 300)
    state = job_state("film-a", 200)
    state.seconds.update({"Generate": 2.0, "BlendEncode": 4.0})
    lines.segment_done(state, 100)
    lines.job_done(JobOutcome("film-a", "up to date", "out/a.mp4"))
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays clean for JSON and tables
    said = captured.err.splitlines()
    assert [line.split(" source")[0] for line in said[:2]] == ["tracking faces: 0/300", "tracking faces: 300/300"]
    assert said[2].startswith("[film-a] 100/200 frames") and "[film-a] up to date" in captured.err
    assert said[2].endswith("| busy fps Generate 50.0, BlendEncode 25.0")


def test_item_bars_show_done_failed_total_rates_and_each_ended_item() -> None:
    console, screen = terminal()
    labels = {"s1": "videos/a.mp4"}
    with ItemBars(Tally("preprocess", 3, "sources", "frames"), labels, console) as bars:
        bars.done("s1", 120, "2 clips")
        bars.failed("s2", "video videos/b.mkv is corrupt")
        bars.failed("s2", "video videos/b.mkv is corrupt")  # the errors table and the summary both tell
    text = screen.getvalue()
    assert "[videos/a.mp4] 2 clips" in text and text.count("[s2] failed: video videos/b.mkv is corrupt") == 1
    assert "2/3" in text and "1 failed" in text and "sources/s" in text and "120 frames" in text and "ETA" in text


def test_without_a_terminal_items_are_plain_lines_from_the_first_second(capsys: pytest.CaptureFixture[str]) -> None:
    with ItemLines(Tally("eval", 2, "jobs", "faces"), every=0.0, tick=0.01) as lines:
        time.sleep(0.05)  # nothing ends: the status still repeats
        lines.done("job-1", 40, "40 faces scored")
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays clean for JSON
    first, *rest = captured.err.splitlines()
    assert first.startswith("eval: 0/2 jobs, 0 failed, 0.00 jobs/s, 0 faces")
    assert len([line for line in rest if line.startswith("eval: 0/2 jobs")]) >= 2
    ended = next(line for line in rest if line.startswith("[job-1]"))
    assert ended.startswith("[job-1] 40 faces scored | eval: 1/2 jobs, 0 failed") and "ETA 0:00:0" in ended


def test_failures_are_followed_in_the_errors_table_while_the_run_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    errors = ErrorsTable(str(tmp_path / "run"), "run-1")
    lines = ItemLines(Tally("index", 3, "sources"), tick=0.01)
    lines.watch(FailureWatch(errors, lines.failed))
    with lines:
        errors.record(InputError("dataset shard x is unreadable: run preprocess again"), "s1", "Sis")
        deadline = time.monotonic() + 5
        while lines.tally.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lines.tally.failed == 1  # seen before the run ends
        errors.record(ValueError("bad"), "s2", "Sis")
    assert lines.tally.failed == 2  # the last poll at the end takes the rest
    err = capsys.readouterr().err
    assert "[s1] failed: dataset shard x is unreadable: run preprocess again | index: 1/3 sources, 1 failed" in err
    assert err.count("[s1] failed") == 1 and "[s2] failed: ValueError: bad" in err


def test_training_shows_phases_then_steps_loss_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    with ItemLines(Tally("train", 1000, "steps", failures=False)) as lines:
        lines.phase("starting workers")
        lines.advance(250, "loss 0.1234", 2.5)
        lines.phase("training")
    err = capsys.readouterr().err.splitlines()
    assert err[1].startswith("train: 0/1000 steps, starting workers, 0.00 steps/s")
    assert err[-1].startswith("train: 250/1000 steps, training, 2.50 steps/s, loss 0.1234, elapsed 0:00:00")
    assert err[-1].endswith("ETA 0:05:00") and "failed" not in err[-1]
