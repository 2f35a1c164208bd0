"""One pool of actors that hold several stage chains, fed row by row by the driver as work appears.

Ray Data runs a dataset whose rows are known when it starts; a batch's segments are not: a job's
segments can only be cut once all of its faces are tracked. Run as two datasets, every job waits
for the whole batch's tracking (a barrier), and each phase starts its own pool (imports and model
loads again). Here one pool holds every chain, the driver submits a job's segments the moment its
faces are chosen, and queued segments go before queued tracking, so jobs finish (and commit) while
others are still being tracked. A row whose stage fails becomes an error record, as in Ray Data;
a dead actor is restarted and its rows are retried.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import ray

from musedub.infra.errors import MusedubError
from musedub.pipeline.core.errors import ErrorsTable
from musedub.pipeline.core.pools import size_pools
from musedub.pipeline.core.ray_adapter import StageActor, StageSpec, fuse
from musedub.pipeline.core.stage import ITEM_ID, Row

log = logging.getLogger(__name__)

ROWS_PER_ACTOR = 2  # in flight on one actor: the row it works on and the next, so it never waits


class ChainActor:
    """One worker: every chain built and set up once (one process's imports and models for all)."""

    def __init__(self, chains: dict[str, tuple[Callable[[], Any], ...]], threads: int, errors: ErrorsTable) -> None:
        self.chains = {name: StageActor(factories, threads, errors) for name, factories in chains.items()}

    def run(self, chain: str, row: Row) -> list[Row]:
        return self.chains[chain](row)


class StreamPool:
    """`submit(chain, row)` any time, also while iterating `results()`, which yields (chain, row out)
    as rows finish, until nothing is queued or running. `first` chains' rows are taken before others."""

    def __init__(
        self, chains: dict[str, StageSpec], errors: ErrorsTable, threads: int, items: int, first: tuple[str, ...] = ()
    ) -> None:
        spec = fuse(list(chains.values()))
        pool = size_pools({spec.name: spec.resources}, ray.cluster_resources(), items)[spec.name]
        log.info("pool %s: %d actors x %.3g CPU, %.3g GPU", spec.name, pool.size, pool.cpus, pool.gpus)
        extra = {"memory": pool.memory_bytes} if pool.memory_bytes else {}
        actor = ray.remote(ChainActor).options(
            num_cpus=pool.cpus, num_gpus=pool.gpus, max_restarts=-1, max_task_retries=-1, **extra
        )
        factories = {name: s.factories for name, s in chains.items()}
        self._actors = [actor.remote(factories, threads, errors) for _ in range(pool.size)]
        self._load = [0] * pool.size
        self._errors = errors
        self._first = first
        self._queued: dict[bool, deque[tuple[str, Row]]] = {True: deque(), False: deque()}
        self._running: dict[Any, tuple[int, str, Row]] = {}  # ref -> (actor, chain, row)

    def submit(self, chain: str, row: Row) -> None:
        self._queued[chain in self._first].append((chain, row))

    def _fill(self) -> None:
        """Hand queued rows to the least busy actors, up to ROWS_PER_ACTOR each."""
        while self._queued[True] or self._queued[False]:
            actor = min(range(len(self._actors)), key=self._load.__getitem__)
            if self._load[actor] >= ROWS_PER_ACTOR:
                return
            chain, row = (self._queued[True] or self._queued[False]).popleft()
            self._running[self._actors[actor].run.remote(chain, row)] = (actor, chain, row)
            self._load[actor] += 1

    def results(self) -> Iterator[tuple[str, Row]]:
        self._fill()
        while self._running:
            [ref], _ = ray.wait(list(self._running), num_returns=1)
            actor, chain, row = self._running.pop(ref)
            self._load[actor] -= 1
            try:
                outs = ray.get(ref)
            except Exception as exc:  # the actor could not run it at all (not a stage's own error)
                failure = MusedubError(f"{chain} worker failed ({type(exc).__name__}): see the worker logs")
                self._errors.record(failure, str(row[ITEM_ID]), chain)
                outs = []
            for out in outs:
                yield chain, out
            self._fill()

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor)
