"""The stream pool on the session's real 2-CPU Ray cluster: rows submitted while it runs come out,
`first` kinds' rows overtake queued ones, rows follow their route from pool to pool, a failing row
becomes an error record alone, and a row whose actor dies is retried on a restarted actor."""

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
from musedub.pipeline.core.stream_pool import Layout, StreamPool

pytestmark = pytest.mark.slow  # the shared Ray cluster


def tagging_stage(tag: str, marker: Path) -> Any:
    """A stage (defined here so Ray pickles it by value) that adds its tag to a row's, fails a `bad`
    row and, the first time a `gen` stage sees a `die` row, ends its process as a killed worker would."""

    @dataclass
    class Tagging:
        resources: Resources = field(default_factory=lambda: Resources(cpus=1.0, max_actors=1))

        def setup(self) -> None:
            """Nothing to load."""

        def __call__(self, row: Row) -> Row:
            if row[ITEM_ID] == "bad":
                raise InputError("row bad: refused")
            if row[ITEM_ID] == "die" and tag == "gen" and not marker.exists():
                marker.touch()
                os._exit(1)
            return {**row, "tags": [*row.get("tags", []), tag]}

    return Tagging


def stage(tmp_path: Path, tag: str) -> Any:
    return declare(tagging_stage(tag, tmp_path / "died-once"))


ONE_STEP = {"track": ("track",), "segment": ("segment",)}


def test_rows_submitted_while_it_runs_come_out_and_first_chains_overtake(ray_cluster: str, tmp_path: Path) -> None:
    """One actor, two rows in flight on it: `s0`, submitted when `t0` comes back, goes before the
    queued `t2`."""
    layout = Layout({"one": {"track": stage(tmp_path, "t"), "segment": stage(tmp_path, "s")}}, ONE_STEP)
    stream = StreamPool(layout, Run(str(tmp_path / "runs")).errors, threads=1, items=4, first=("segment",))
    for name in ("t0", "t1", "t2"):
        stream.submit("track", {ITEM_ID: name})
    seen = []
    try:
        for chain, out in stream.results():
            seen.append((chain, out[ITEM_ID], out["tags"]))
            if out[ITEM_ID] == "t0":
                stream.submit("segment", {ITEM_ID: "s0"})
    finally:
        stream.close()
    assert seen == [("track", "t0", ["t"]), ("track", "t1", ["t"]), ("segment", "s0", ["s"]), ("track", "t2", ["t"])]


def test_rows_cross_pools_and_a_bad_row_fails_alone_and_a_dead_actors_row_is_retried(
    ray_cluster: str, tmp_path: Path
) -> None:
    """Segments go prep (pool a) -> gen (pool b) -> finish (pool a), as around a GPU generator."""
    run = Run(str(tmp_path / "runs"))
    pools = {
        "a": {"prep": stage(tmp_path, "prep"), "finish": stage(tmp_path, "finish")},
        "b": {"gen": stage(tmp_path, "gen")},
    }
    layout = Layout(pools, {"segment": ("prep", "gen", "finish")})
    stream = StreamPool(layout, run.errors, threads=1, items=4)
    for name in ("ok", "bad", "die", "after"):
        stream.submit("segment", {ITEM_ID: name})
    try:
        done = sorted((out[ITEM_ID], out["tags"]) for _, out in stream.results())
    finally:
        stream.close()
    assert (tmp_path / "died-once").exists()  # the actor did die once
    assert done == [(name, ["prep", "gen", "finish"]) for name in ("after", "die", "ok")]
    assert [(r.item_id, r.stage, r.message) for r in run.errors.read()] == [("bad", "Tagging", "row bad: refused")]
