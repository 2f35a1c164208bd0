"""What every pipeline stage is: settings as fields, `setup()` once per worker, `__call__(row)`.

Stages never import Ray. A row is a dict of plain values and numpy arrays (one segment, one
source, one job) that carries its own id under `ITEM_ID`; the local runner calls stages in
process, and the Ray adapter (`core.ray_adapter`) sizes actor pools from `resources`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Row = dict[str, Any]
ITEM_ID = "item_id"  # every row names the work item it stands for; errors are recorded under it


@dataclass(frozen=True)
class Resources:
    """What a stage needs, as data: the adapter turns it into an actor pool for the cluster at hand.

    `cpus`/`gpus`/`memory_gb` are per actor; when the stages running at once ask for more CPUs
    than the cluster has, the adapter scales every actor's CPU share down alike (Ray's fractional
    CPUs). `max_actors` None means as many as fit; `min_actors` are asked for even when the
    cluster has not (yet) got room, so an autoscaler can add nodes. `calls` > 1 lets an actor
    work on that many rows at once, one thread each (a thread-safe stage that batches across rows).
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0
    min_actors: int = 1
    max_actors: int | None = None
    calls: int = 1


class Stage(Protocol):
    @property
    def resources(self) -> Resources: ...

    def setup(self) -> None:
        """Load models and open what the stage needs; called once per worker before any row."""
        ...

    def __call__(self, row: Row) -> Row: ...
