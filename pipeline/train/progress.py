"""Training progress the driver can show while `fit` blocks: rank 0 posts its phase and each step to
a small actor the driver owns, and the driver reads the latest post once a second.

Ray Train's own channel, `ray.train.report`, is a barrier across every worker, and its callbacks
(`ray.train.UserCallback.after_report`) run in the Train controller, not in the driver. A post
is one message from rank 0 that no worker waits for, and it also carries the phases between
steps (loading models, restoring a checkpoint, saving one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import ray

BOARD = "progress_board"  # the key of the board's actor in a worker's train_loop_config


@dataclass(frozen=True)
class StepPost:
    phase: str  # "loading models", "restoring", "training", "saving"
    step: int  # steps done
    loss: float | None = None
    rate: float | None = None  # steps/s since this attempt's loop began (a restart begins again)


@ray.remote(num_cpus=0)
class _Board:
    def __init__(self) -> None:
        self.post: StepPost | None = None

    def put(self, post: StepPost) -> None:
        self.post = post

    def latest(self) -> StepPost | None:
        return self.post


class StepBoard:
    """The driver's side: made once connected, handed to `fit`, read by a progress thread."""

    def __init__(self) -> None:
        self.actor = _Board.remote()

    def latest(self) -> StepPost | None:
        return ray.get(self.actor.latest.remote(), timeout=10)

    def __enter__(self) -> StepBoard:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        ray.kill(self.actor)


def without_board(values: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A worker's config values apart from the board's actor (None when the run has no board)."""
    rest = dict(values)
    return rest, rest.pop(BOARD, None)


class StepPoster:
    """A worker's side: rank 0 posts (in order, without waiting); other ranks post nothing."""

    def __init__(self, board: Any, rank: int) -> None:
        self.board = board if rank == 0 else None
        self.began = (0, time.monotonic())

    def phase(self, name: str, step: int) -> None:
        self._put(StepPost(name, step))

    def begin(self, step: int) -> None:
        """The loop starts at `step`: the rate counts from here."""
        self.began = (step, time.monotonic())

    def step(self, step: int, loss: float) -> None:
        first, since = self.began
        self._put(StepPost("training", step, loss, (step - first) / max(time.monotonic() - since, 1e-6)))

    def _put(self, post: StepPost) -> None:
        if self.board is not None:
            self.board.put.remote(post)
