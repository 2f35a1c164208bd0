"""The one place stages meet Ray: each stage becomes a Ray Data actor pool.

An actor builds its stage and runs `setup()` once. A row whose stage raises is dropped from the
stream and its error written under the job's work prefix, so one bad job never fails the
dataset (and every row keeps the same columns). Seconds per stage ride along as JSON.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import ray
import torch
from musedub.infra.errors import MusedubError
from musedub.infra.malloc_tuning import tune_malloc
from musedub.infra.storage import join_uri, write_bytes_atomic
from musedub.pipeline.core.stage import Row, Stage

log = logging.getLogger(__name__)


def piece_id(row: Row) -> str:
    """The work item a row stands for: a segment, or a chunk of frames to track."""
    if "segment_id" in row:
        return str(row["segment_id"])
    return f"track-{row['job_key']}-{row['chunk_start']}-{row['chunk_stop']}"


def failure_uri(row: Row) -> str:
    return join_uri(row["work"], f"failed-{piece_id(row)}.txt")


class StageActor:
    def __init__(self, factory: Callable[[], Stage], threads: int) -> None:
        tune_malloc()
        # Actors share the node's CPUs; OpenCV's own pool (one thread per core) only oversubscribes
        # them. Its per-pixel results do not depend on the thread count.
        cv2.setNumThreads(1)
        self.threads = threads
        self.stage = factory()
        self.stage.setup()
        self.name = type(self.stage).__name__.removesuffix("Stage")

    def __call__(self, row: Row) -> list[Row]:
        # Not Ray's CPU share: the same float sums, so the same bits, as `musedub dub`. Set per
        # call because OpenMP keeps the count per thread and calls may come on another thread.
        torch.set_num_threads(self.threads)
        tick = time.perf_counter()
        try:
            out = self.stage(row)
        except MusedubError as exc:
            message = str(exc)
        except Exception as exc:  # a bug on one input must not sink the batch; keep its type
            log.exception("%s failed on %s", self.name, piece_id(row))
            message = f"{type(exc).__name__}: {exc}"
        else:
            seconds = json.loads(row.get("seconds") or "{}")
            seconds[self.name] = seconds.get(self.name, 0.0) + time.perf_counter() - tick
            return [{**out, "seconds": json.dumps(seconds)}]
        write_bytes_atomic(failure_uri(row), f"{self.name}: {message}".encode(), "failure record")
        return []


@dataclass(frozen=True)
class Pool:
    """How many actors of a stage run at once, and what each holds."""

    size: int
    cpus: float
    gpus: float = 0.0


def spread_pool(resources: dict[str, float], items: int) -> Pool:
    """Up to one actor per CPU for `items` independent items, keeping half a CPU free for Ray
    Data's own tasks (a pool that takes every CPU starves them and the dataset deadlocks)."""
    cpus = resources.get("CPU", 1.0)
    size = max(1, min(items, int(cpus - 0.5)))
    return Pool(size, round(min(1.0, max(0.05, (cpus - 0.5) / size)), 3))


def apply(dataset: ray.data.Dataset, factory: Callable[[], Stage], pool: Pool, threads: int) -> ray.data.Dataset:
    return dataset.flat_map(
        StageActor,
        fn_constructor_args=(factory, threads),
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool.size),
        num_cpus=pool.cpus,
        num_gpus=pool.gpus,
    )  # Ray Data restarts dead actors and retries their rows by default (max_restarts=-1)


def map_items(items: list[Row], factory: Callable[[], Stage], resources: dict[str, float]) -> Iterator[Row]:
    """One stage call per independent item (a source, a job), spread over the cluster's CPUs with
    one torch thread each; results as they finish."""
    if not items:
        return
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    for row in apply(dataset, factory, spread_pool(resources, len(items)), threads=1).iter_rows():
        yield dict(row)
