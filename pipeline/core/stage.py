"""What every pipeline stage is: settings as fields, `setup()` once per worker, `__call__(row)`.

Stages never import Ray. A row is a dict of plain values and numpy arrays (one segment or one
job); the local runner calls stages in process, and a Ray adapter maps the same classes onto
actor pools using `resources`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Row = dict[str, Any]


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage holds: CPUs (fractions allowed) and GPUs."""

    cpus: float = 1.0
    gpus: float = 0.0


class Stage(Protocol):
    resources: Resources

    def setup(self) -> None:
        """Load models and open what the stage needs; called once per worker before any row."""
        ...

    def __call__(self, row: Row) -> Row: ...
