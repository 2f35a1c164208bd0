"""Pools of actors that hold several stage chains, fed row by row by the driver as work appears.

Ray Data runs a dataset whose rows are known when it starts; a batch's segments are not: a job's
segments can only be cut once all of its faces are tracked. Run as two datasets, every job waits
for the whole batch's tracking (a barrier: on a GPU cluster the GPUs idle through it), and each
phase starts its own pools (imports and model loads again). Here the pools live for the batch,
the driver submits a job's segments the moment its faces are chosen, and each kind of row follows
its route of chains from pool to pool; rows further along their route go first, then `first`
kinds, so jobs finish (and commit) while others are still being tracked. Rows move between pools
as object references (never through the driver). A row whose stage fails becomes an error record,
as in Ray Data; a dead actor is restarted and its rows are retried.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ray

from musedub.infra.errors import MusedubError
from musedub.pipeline.core.errors import ErrorsTable
from musedub.pipeline.core.pools import Pool, size_pools, threads_oversubscribe
from musedub.pipeline.core.ray_adapter import StageActor, StageSpec, fuse
from musedub.pipeline.core.stage import ITEM_ID, Resources, Row

log = logging.getLogger(__name__)

ROWS_PER_CALL = 2  # in flight per call an actor runs at once: the one it works on and the next


@dataclass(frozen=True)
class Layout:
    """Pools (name -> the chains its actors hold, by name) and each kind of row's route of chains."""

    pools: dict[str, dict[str, StageSpec]]
    routes: dict[str, tuple[str, ...]]

    def spec(self, pool: str) -> StageSpec:
        """What one actor of the pool holds and needs (a lone chain keeps its own calls at once)."""
        chains = list(self.pools[pool].values())
        return chains[0] if len(chains) == 1 else fuse(chains)

    def resources(self) -> dict[str, Resources]:
        return {name: self.spec(name).resources for name in self.pools}

    def pool_of(self, chain: str) -> str:
        return next(name for name, chains in self.pools.items() if chain in chains)


class ChainActor:
    """One worker: each of its chains built and set up once (one process's imports and models)."""

    def __init__(self, chains: dict[str, tuple[Callable[[], Any], ...]], threads: int, errors: ErrorsTable) -> None:
        self.chains = {name: StageActor(factories, threads, errors) for name, factories in chains.items()}

    def run(self, chain: str, rows: list[Row]) -> list[Row]:
        return [out for row in rows for out in self.chains[chain](row)]


@dataclass
class _Actors:
    handles: list[Any]
    limit: int  # rows in flight on one actor
    load: list[int] = field(default_factory=list)
    queue: list[tuple[tuple[int, int, int], str, int, Any, str]] = field(default_factory=list)  # a heap

    def idlest(self) -> int | None:
        """The actor with the fewest rows in flight, None if all are full."""
        actor = min(range(len(self.handles)), key=self.load.__getitem__)
        return actor if self.load[actor] < self.limit else None


class StreamPool:
    """`submit(kind, row)` any time, also while iterating `results()`, which yields (kind, row out)
    as rows reach the end of their route, until nothing is queued or running."""

    def __init__(
        self, layout: Layout, errors: ErrorsTable, threads: int, items: int, first: tuple[str, ...] = ()
    ) -> None:
        cluster = ray.cluster_resources()
        sizes = size_pools(layout.resources(), cluster, items)
        self._layout, self._errors, self._first = layout, errors, first
        wait = {"OMP_WAIT_POLICY": "PASSIVE"} if threads_oversubscribe(list(sizes.values()), threads, cluster) else {}
        self._pools = {name: self._start(layout, name, sizes[name], threads, wait) for name in layout.pools}
        self._order = itertools.count()
        self._running: dict[Any, tuple[str, int, str, int, str]] = {}  # ref -> (pool, actor, kind, step, item)

    def _start(self, layout: Layout, name: str, pool: Pool, threads: int, env: dict[str, str]) -> _Actors:
        spec = layout.spec(name)
        calls = spec.resources.calls
        log.info("pool %s: %d actors x %.3g CPU, %.3g GPU", spec.name, pool.size, pool.cpus, pool.gpus)
        extra: dict[str, Any] = {"memory": pool.memory_bytes} if pool.memory_bytes else {}
        if env:
            extra["runtime_env"] = {"env_vars": env}
        if calls > 1:
            extra["max_concurrency"] = calls  # a thread per call (a stage that batches across rows)
        actor = ray.remote(ChainActor).options(
            num_cpus=pool.cpus, num_gpus=pool.gpus, max_restarts=-1, max_task_retries=-1, **extra
        )
        factories = {chain: s.factories for chain, s in layout.pools[name].items()}
        handles = [actor.remote(factories, threads, self._errors) for _ in range(pool.size)]
        return _Actors(handles, ROWS_PER_CALL * calls, [0] * pool.size)

    def submit(self, kind: str, row: Row) -> None:
        self._queue(kind, 0, [row], str(row[ITEM_ID]))

    def _queue(self, kind: str, step: int, rows: Any, item: str) -> None:
        """`rows`: a list of rows, or the reference to one that the previous chain returned."""
        chain = self._layout.routes[kind][step]
        pool = self._pools[self._layout.pool_of(chain)]
        priority = (-step, kind not in self._first, next(self._order))
        heapq.heappush(pool.queue, (priority, kind, step, rows, item))

    def _fill(self) -> None:
        for name, pool in self._pools.items():
            while pool.queue and (actor := pool.idlest()) is not None:
                _, kind, step, rows, item = heapq.heappop(pool.queue)
                chain = self._layout.routes[kind][step]
                self._running[pool.handles[actor].run.remote(chain, rows)] = (name, actor, kind, step, item)
                pool.load[actor] += 1

    def results(self) -> Iterator[tuple[str, Row]]:
        self._fill()
        while self._running:
            [ref], _ = ray.wait(list(self._running), num_returns=1, fetch_local=False)
            name, actor, kind, step, item = self._running.pop(ref)
            self._pools[name].load[actor] -= 1
            if step + 1 < len(self._layout.routes[kind]):
                self._queue(kind, step + 1, ref, item)  # the next actor fetches it, not the driver
            else:
                yield from ((kind, out) for out in self._outputs(ref, kind, item))
            self._fill()

    def _outputs(self, ref: Any, kind: str, item: str) -> list[Row]:
        try:
            return ray.get(ref)
        except Exception as exc:  # an actor could not run it at all (not a stage's own error)
            failure = MusedubError(f"{kind} worker failed ({type(exc).__name__}): see the worker logs")
            self._errors.record(failure, item, kind)
            return []

    def close(self) -> None:
        for pool in self._pools.values():
            for handle in pool.handles:
                ray.kill(handle)
