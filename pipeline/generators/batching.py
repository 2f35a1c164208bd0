"""Fixed-shape generator batches filled from one or several segments at once.

A GPU generator is fastest at 32-64 frames a batch, but a segment's last batch is short, and a
worker that waits for one segment at a time leaves the device idle between them. Here every call
(one segment, one thread of the actor) queues its frames; whichever caller is free runs the next
batch, filled in arrival order with frames of every queued segment of the same group. A part-filled
batch runs once every caller that may be inside is queued (no more frames can come) or once its
oldest frames have waited `wait_s`.

Every batch is padded to the full size (repeating its last frame), so each frame is computed in a
batch of one shape whichever frames share it: a frame comes out with the same bits from a batch of
many segments as from `dub`'s batches of one, as long as the kernels compute each sample alone
(tested on CPU; `bench/gpu_smoke.py` checks the GPU). One graph shape also serves a compiled model.
A batch that runs out of device memory is halved and retried with a warning; the size that fitted
stays for the rest of the worker's life.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch

from musedub.pipeline.generators.base import Batch, SegmentFaces

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    """One caller's segment: its frames go out in order and come back in order."""

    faces: SegmentFaces
    count: int
    size: int  # the batch size its job asks for
    arrived: float
    taken: int = 0  # frames handed to a batch so far
    parts: list[torch.Tensor] = field(default_factory=list)  # generated faces, in frame order
    error: BaseException | None = None

    @property
    def key(self) -> tuple[Hashable, int]:
        return (self.faces.group, self.size)

    @property
    def finished(self) -> bool:
        return self.error is not None or sum(len(p) for p in self.parts) == self.count


@dataclass
class _Slice:
    request: _Request
    first: int
    count: int


@dataclass
class BatchStats:
    """What the batches held: frames generated, padding frames computed and thrown away."""

    batches: int = 0
    frames: int = 0
    padding: int = 0
    mixed: int = 0  # batches holding frames of more than one segment


class FrameBatcher:
    """Runs segments' frames through their generator in full batches; thread-safe."""

    def __init__(self, device: torch.device, callers: int = 1, wait_s: float = 0.5) -> None:
        self.device, self.callers, self.wait_s = device, callers, wait_s
        self.fits = 0  # the largest batch known to fit on the device; 0: not limited yet
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._inside = 0
        self._running = False

    def generate(self, faces: SegmentFaces, count: int, size: int) -> torch.Tensor:
        """The segment's `count` frames (positions 0..count-1) -> faces (count, 256, 256, 3) uint8 on its device."""
        request = _Request(faces, count, size, time.monotonic())
        with self._cond:
            self._inside += 1
            self._queue.append(request)
            try:
                while not request.finished:
                    work = None if self._running else self._next_batch()
                    if work is None:  # while a batch runs, its end wakes every caller
                        self._cond.wait(timeout=None if self._running else self._wait_left())
                        continue
                    self._running = True
                    self._cond.release()
                    try:
                        self._run(work)
                    finally:
                        self._cond.acquire()
                        self._running = False
                        self._cond.notify_all()
            finally:
                self._inside -= 1
                if request in self._queue:
                    self._queue.remove(request)
                self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return torch.cat(request.parts)

    def _size(self, request: _Request) -> int:
        return min(request.size, self.fits) if self.fits else request.size

    def _wait_left(self) -> float | None:
        """Seconds until the oldest queued frames have waited `wait_s` (None: nothing queued)."""
        waiting = [r.arrived for r in self._queue if r.taken < r.count and r.error is None]
        return max(min(waiting) + self.wait_s - time.monotonic(), 0.001) if waiting else None

    def _next_batch(self) -> list[_Slice] | None:
        """Up to a batch of queued frames of the first waiting segment's group, oldest first, if it
        is time to run them (called holding the lock)."""
        waiting = [r for r in self._queue if r.taken < r.count and r.error is None]
        if not waiting:
            return None
        head = waiting[0]
        size = self._size(head)
        group = [r for r in waiting if r.key == head.key]
        full = sum(r.count - r.taken for r in group) >= size
        nobody_else = self._inside >= self.callers  # every caller that can be inside is queued
        if not (full or nobody_else or time.monotonic() - head.arrived >= self.wait_s):
            return None
        work, room = [], size
        for request in group:
            count = min(request.count - request.taken, room)
            if count:
                work.append(_Slice(request, request.taken, count))
                request.taken += count
                room -= count
        return work

    def _run(self, work: list[_Slice]) -> None:
        """Generate the batch, handing each caller its faces. A batch that does not fit is halved;
        one that fails otherwise runs again segment by segment, so only the segment at fault fails."""
        size = self._size(work[0].request)
        pending = _chunks(work, size)
        while pending:
            chunk = [piece for piece in pending.pop(0) if piece.request.error is None]
            if not chunk:
                continue
            try:
                faces = self._run_padded(chunk, size)
            except Exception as exc:  # handled below, once the failed batch's tensors are freed
                error = exc
            else:
                for piece in chunk:
                    piece.request.parts.append(faces[: piece.count])
                    faces = faces[piece.count :]
                continue
            owners = list(dict.fromkeys(piece.request for piece in chunk))
            if isinstance(error, torch.OutOfMemoryError) and size > 1:
                size = self._halve(size)
                pending = _chunks([*chunk, *(piece for rest in pending for piece in rest)], size)
            elif len(owners) > 1:
                pending = [[piece for piece in chunk if piece.request is owner] for owner in owners] + pending
            else:
                owners[0].error = error

    def _halve(self, size: int) -> int:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        log.warning(
            "generator: a batch of %d frames ran out of memory on %s; retrying with %d", size, self.device, size // 2
        )
        self.fits = size // 2
        return self.fits

    def _run_padded(self, chunk: list[_Slice], size: int) -> torch.Tensor:
        """(n <= size frames) -> faces (n, 256, 256, 3): the model always sees `size` rows."""
        taken = [p.request.faces.take(torch.arange(p.first, p.first + p.count, device=self.device)) for p in chunk]
        batch: Batch = {name: torch.cat([t[name] for t in taken]) for name in taken[0]}
        count = sum(p.count for p in chunk)
        pad = torch.cat([torch.arange(count), torch.full((size - count,), count - 1)]).to(self.device)
        batch = {name: value[pad] for name, value in batch.items()}  # (size, ...)
        faces = chunk[0].request.faces.run(batch)[:count]
        self.stats.batches += 1
        self.stats.frames += count
        self.stats.padding += size - count
        self.stats.mixed += len({id(p.request) for p in chunk}) > 1
        return faces


def _chunks(work: list[_Slice], size: int) -> list[list[_Slice]]:
    """Slices regrouped into chunks of at most `size` frames, splitting a slice where needed."""
    chunks: list[list[_Slice]] = [[]]
    room = size
    for piece in work:
        first, left = piece.first, piece.count
        while left:
            if room == 0:
                chunks.append([])
                room = size
            count = min(left, room)
            chunks[-1].append(_Slice(piece.request, first, count))
            first, left, room = first + count, left - count, room - count
    return chunks
