"""The one place stages meet Ray Data: declared `Resources` become an actor pool, items stream through.

An actor builds its stage and runs `setup()` once. A row whose stage raises becomes an
`ErrorRecord` in the run's errors table (under the row's own `ITEM_ID`) and leaves the stream,
so one bad item never fails the dataset and every row keeps the same columns. Seconds per stage
ride along as JSON. Nothing here knows what a row means.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import ray
import ray.data
import torch
from ray.data.expressions import col

from musedub.infra.errors import MusedubError
from musedub.infra.malloc_tuning import tune_malloc
from musedub.pipeline.core.errors import ErrorsTable
from musedub.pipeline.core.pools import size_pools
from musedub.pipeline.core.stage import ITEM_ID, Resources, Row, Stage

log = logging.getLogger(__name__)


def stage_name(stage: Stage) -> str:
    return type(stage).__name__.removesuffix("Stage")


class StageActor:
    """One worker of a pool: a chain of one or more stages (a fused chain runs its stages in turn
    in this process, so rows never cross the object store between them)."""

    def __init__(self, factories: tuple[Callable[[], Stage], ...], threads: int, errors: ErrorsTable) -> None:
        tune_malloc()
        # Actors share the node's CPUs; OpenCV's own pool (one thread per core) only oversubscribes
        # them. Its per-pixel results do not depend on the thread count.
        cv2.setNumThreads(1)
        self.threads = threads
        self.errors = errors
        self.stages = [factory() for factory in factories]
        for stage in self.stages:
            stage.setup()

    def __call__(self, row: Row) -> list[Row]:
        # Not Ray's CPU share: the same float sums, so the same bits, as in process. Set per call
        # because OpenMP keeps the count per thread and calls may come on another thread.
        torch.set_num_threads(self.threads)
        seconds = json.loads(row.get("seconds") or "{}")
        item = str(row[ITEM_ID])
        for stage in self.stages:
            name, tick = stage_name(stage), time.perf_counter()
            try:
                row = stage(row)
            except Exception as exc:  # one bad item must not sink the run; its record keeps the type
                if not isinstance(exc, MusedubError):
                    log.exception("%s failed on %s", name, item)
                self.errors.record(exc, item, name)
                return []
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - tick
        return [{**row, "seconds": json.dumps(seconds)}]


@dataclass(frozen=True)
class StageSpec:
    """Stages to run in one pool: how to build them on a worker, and what the pool's actors need."""

    factories: tuple[Callable[[], Stage], ...]
    resources: Resources
    name: str


def declare(factory: Callable[[], Stage], **changes: Any) -> StageSpec:
    """Read a stage's declared resources (building a stage is cheap: `setup()` loads the models),
    with user overrides such as `max_actors`."""
    stage = factory()
    return StageSpec((factory,), replace(stage.resources, **changes), stage_name(stage))


def fuse(specs: Sequence[StageSpec]) -> StageSpec:
    """One pool running `specs` in turn in each actor: where no stage needs its own hardware (a
    CPU-only cluster), this spares the object store and the start of a pool per stage. Its actors
    hold what the most demanding stage needs, at the smallest actor range any stage allows."""
    every = [s.resources for s in specs]
    limits = [r.max_actors for r in every if r.max_actors is not None]
    resources = Resources(
        cpus=max(r.cpus for r in every),
        gpus=max(r.gpus for r in every),
        memory_gb=sum(r.memory_gb for r in every),
        min_actors=max(r.min_actors for r in every),
        max_actors=min(limits) if limits else None,
        calls=1,  # the chain runs one row at a time
    )
    return StageSpec(tuple(f for s in specs for f in s.factories), resources, "+".join(s.name for s in specs))


def _configure() -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # commands print their own progress
    ctx.print_on_execution_start = False


def map_items(items: list[Row], factory: Callable[[], Stage], errors: ErrorsTable) -> Iterator[Row]:
    """One stage call per independent item (a source, a job), spread over the cluster with one torch
    thread each; results as they finish. Rows whose stage failed are recorded in `errors` and do
    not come out. An item is minutes of work: one at a time per actor, so items never queue behind
    the first actor to start while the others are still loading."""
    if not items:
        return
    _configure()
    spec = declare(factory)
    pool = size_pools({spec.name: spec.resources}, ray.cluster_resources(), len(items))[spec.name]
    log.info("pool %s: %d-%d actors x %.3g CPU, %.3g GPU", spec.name, pool.min_size, pool.size, pool.cpus, pool.gpus)
    extra = {"memory": pool.memory_bytes} if pool.memory_bytes else {}
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).flat_map(
        StageActor,
        fn_constructor_args=(spec.factories, 1, errors),
        compute=ray.data.ActorPoolStrategy(min_size=pool.min_size, max_size=pool.size, max_tasks_in_flight_per_actor=1),
        num_cpus=pool.cpus,
        num_gpus=pool.gpus,
        **extra,
    )  # Ray Data restarts dead actors and retries their rows by default (max_restarts=-1)
    for row in dataset.iter_rows():
        yield dict(row)


def run_tasks(fn: Callable[..., Any], calls: Iterable[tuple[Any, ...]], cpus: float = 0.25) -> list[Any]:
    """`fn(*args)` for each call as small Ray tasks (planning, committing); results in call order."""
    remote = ray.remote(num_cpus=cpus)(fn)
    return ray.get([remote.remote(*args) for args in calls])


class Tasks:
    """Small Ray tasks started one by one while a pipeline runs; `ready()` collects what finished."""

    def __init__(self, fn: Callable[..., Any], cpus: float = 0.25) -> None:
        self._remote = ray.remote(num_cpus=cpus)(fn)
        self._pending: list[Any] = []

    def start(self, *args: Any) -> None:
        self._pending.append(self._remote.remote(*args))

    def ready(self, wait: bool = False) -> list[Any]:
        if not self._pending:
            return []
        done, self._pending = ray.wait(self._pending, num_returns=len(self._pending), timeout=None if wait else 0)
        return ray.get(done)


def read_parquet(uri: str, columns: list[str], at_least: dict[str, float]) -> Any:
    """A Ray dataset of a Parquet table's rows whose columns reach the given minimums (training)."""
    _configure()
    dataset = ray.data.read_parquet(uri, columns=columns, partitioning=None)
    condition = None
    for name, minimum in at_least.items():
        term = col(name) >= minimum
        condition = term if condition is None else condition & term
    return dataset if condition is None else dataset.filter(expr=condition)
