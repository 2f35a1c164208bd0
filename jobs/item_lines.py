"""Progress of a run of independent items (sources, jobs) or of training steps, as plain lines on stderr.

One line per ended item or new phase, and the run's state every `every` seconds while nothing
ends, so a log shows from the first second that the run is alive. A ticker thread runs the
pollers that feed it from the running pipeline (the run's errors table, the training board) once
a second. Lines read the same in a terminal, `ray job logs` and CI; stdout stays clean for JSON.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Self

import typer

from musedub.pipeline.core.errors import ErrorsTable

log = logging.getLogger(__name__)


def clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


@dataclass
class Tally:
    """What lines and bars both show of a run: items ended of the total, failures, rates and ETA."""

    what: str  # the command: "preprocess"
    total: int
    unit: str  # "sources", "jobs", "steps"
    measure: str = ""  # a second count with its own rate ("frames", "faces"); "" for none
    failures: bool = True  # whether items can fail on their own (training steps cannot)
    done: int = 0
    failed: int = 0
    amount: int = 0  # of `measure`
    phase: str = ""
    note: str = ""  # the latest loss, say
    speed: float | None = None  # units/s measured where the work runs (training); else counted here
    started: float = field(default_factory=time.monotonic)

    @property
    def ended(self) -> int:
        return self.done + self.failed

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)

    def rate(self) -> float:
        return self.speed if self.speed is not None else self.ended / self.elapsed()

    def eta(self) -> str:
        rate = self.rate()
        return clock(max(self.total - self.ended, 0) / rate) if rate > 0 else "?"

    def detail(self) -> str:
        """Everything but the count: phase, failures, rates, note, times."""
        parts = [self.phase] if self.phase else []
        if self.failures:
            parts.append(f"{self.failed} failed")
        parts.append(f"{self.rate():.2f} {self.unit}/s")
        if self.measure:
            parts.append(f"{self.amount} {self.measure}, {self.amount / self.elapsed():.1f} {self.measure}/s")
        if self.note:
            parts.append(self.note)
        parts.append(f"elapsed {clock(self.elapsed())}, ETA {self.eta()}")
        return ", ".join(parts)

    def status(self) -> str:
        return f"{self.what}: {self.ended}/{self.total} {self.unit}, {self.detail()}"


class ItemLines:
    """Each item counts once: a second `done`/`failed` for it is ignored (the errors table and a
    command's own summary may both report the same failure). Use as a context manager."""

    def __init__(
        self, tally: Tally, labels: dict[str, str] | None = None, every: float = 30.0, tick: float = 1.0
    ) -> None:
        self.tally = tally
        self.labels = labels or {}  # item id -> what a person recognises (a source's path)
        self.every, self.tick = every, tick
        self.pollers: list[Callable[[], None]] = []
        self.ended: set[str] = set()
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"{tally.what} progress", daemon=True)
        self.last_line = 0.0

    def watch(self, poll: Callable[[], None]) -> Self:
        """Run `poll` on every tick (and once more at the end): it feeds this progress."""
        self.pollers.append(poll)
        return self

    def __enter__(self) -> Self:
        self.tally.started = time.monotonic()
        with self.lock:
            self.show("")
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def done(self, item: str, amount: int = 0, detail: str = "done") -> None:
        with self.lock:
            if item in self.ended:
                return
            self.ended.add(item)
            self.tally.done += 1
            self.tally.amount += amount
            self.show(f"[{self.labels.get(item, item)}] {detail}")

    def failed(self, item: str, message: str = "") -> None:
        with self.lock:
            if item in self.ended:
                return
            self.ended.add(item)
            self.tally.failed += 1
            self.show(f"[{self.labels.get(item, item)}] failed{': ' + message if message else ''}")

    def phase(self, name: str) -> None:
        with self.lock:
            if name != self.tally.phase:
                self.tally.phase = name
                self.show("")

    def advance(self, done: int, note: str = "", speed: float | None = None) -> None:
        """Set the count (training steps are counted where they run); shown on the next tick."""
        with self.lock:
            self.tally.done, self.tally.note, self.tally.speed = done, note, speed

    def show(self, head: str) -> None:
        """`head | status`, or the status alone (called holding the lock)."""
        self.last_line = time.monotonic()
        status = self.tally.status()
        typer.echo(f"{head} | {status}" if head else status, err=True)

    def refresh(self) -> None:
        """A tick: lines repeat the status only when nothing was said for `every` seconds."""
        with self.lock:
            if time.monotonic() - self.last_line >= self.every:
                self.show("")

    def poll(self) -> None:
        for poll in self.pollers:
            try:
                poll()
            except Exception as exc:  # a progress report must never sink the run it reports on
                log.warning("progress of %s: %s", self.tally.what, exc)

    def _run(self) -> None:
        while not self.stopping.wait(self.tick):
            self.poll()
            self.refresh()

    def close(self) -> None:
        """Stop ticking, take the last failures (so the final counts are exact) and say where the run ended."""
        if self.thread.is_alive():
            self.stopping.set()
            self.thread.join()
        self.poll()
        with self.lock:
            self.show("")


class FailureWatch:
    """A poller: the failures workers record in the run's errors table, as they land, each part read once."""

    def __init__(self, errors: ErrorsTable, failed: Callable[[str, str], None]) -> None:
        self.errors, self.failed = errors, failed
        self.seen: set[str] = set()

    def __call__(self) -> None:
        for record in self.errors.read(self.seen):
            self.failed(record.item_id, record.message)
