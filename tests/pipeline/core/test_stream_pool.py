"""The stream pool on the session's real 2-CPU Ray cluster: rows submitted while it runs come out,
`first` chains' rows overtake queued ones, a failing row becomes an error record alone, and a row
whose actor dies is retried on a restarted actor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from musedub.infra.errors import InputError
from musedub.pipeline.core.ray_adapter import declare
from musedub.pipeline.core.run import Run
from musedub.pipeline.core.stage import ITEM_ID, Resources, Row
from musedub.pipeline.core.stream_pool import StreamPool

pytestmark = pytest.mark.slow  # the shared Ray cluster


def tagging_stage(tag: str, marker: Path) -> Any:
    """A stage (defined here so Ray pickles it by value) that tags rows, fails a `bad` row and, the
    first time it sees a `die` row, ends its process as a killed worker would."""

    @dataclass
    class Tagging:
        resources: Resources = field(default_factory=lambda: Resources(cpus=1.0, max_actors=1))

        def setup(self) -> None:
            """Nothing to load."""

        def __call__(self, row: Row) -> Row:
            if row[ITEM_ID] == "bad":
                raise InputError("row bad: refused")
            if row[ITEM_ID] == "die" and not marker.exists():
                marker.touch()
                os._exit(1)
            return {**row, "tag": tag}

    return Tagging


def pool(tmp_path: Path, run: Run) -> StreamPool:
    marker = tmp_path / "died-once"
    chains = {name: declare(tagging_stage(name, marker)) for name in ("track", "segment")}
    return StreamPool(chains, run.errors, threads=1, items=8, first=("segment",))


def test_rows_submitted_while_it_runs_come_out_and_first_chains_overtake(ray_cluster: str, tmp_path: Path) -> None:
    """One actor, two rows in flight on it: `s0`, submitted when `t0` comes back, goes before the
    queued `t2`."""
    stream = pool(tmp_path, Run(str(tmp_path / "runs")))
    for name in ("t0", "t1", "t2"):
        stream.submit("track", {ITEM_ID: name})
    seen = []
    try:
        for chain, out in stream.results():
            seen.append((chain, out[ITEM_ID], out["tag"]))
            if out[ITEM_ID] == "t0":
                stream.submit("segment", {ITEM_ID: "s0"})
    finally:
        stream.close()
    assert seen == [
        ("track", "t0", "track"),
        ("track", "t1", "track"),
        ("segment", "s0", "segment"),
        ("track", "t2", "track"),
    ]


def test_a_bad_row_fails_alone_and_a_dead_actors_row_is_retried(ray_cluster: str, tmp_path: Path) -> None:
    run = Run(str(tmp_path / "runs"))
    stream = pool(tmp_path, run)
    for name in ("ok", "bad", "die", "after"):
        stream.submit("segment", {ITEM_ID: name})
    try:
        done = sorted(out[ITEM_ID] for _, out in stream.results())
    finally:
        stream.close()
    assert (tmp_path / "died-once").exists()  # the actor did die once
    assert done == ["after", "die", "ok"]
    assert [(r.item_id, r.stage, r.message) for r in run.errors.read()] == [("bad", "Tagging", "row bad: refused")]
