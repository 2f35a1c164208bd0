"""The driver side of training: the clip dataset, the TorchTrainer, and what a run produced."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray.train
from ray.train.torch import TorchTrainer

from musedub.infra.errors import ConfigError, InputError
from musedub.infra.storage import filesystem, is_local, join_uri, list_files, list_tree, local_path
from musedub.pipeline.core.ray_adapter import read_parquet
from musedub.pipeline.dataset.sis_index import SIS_MARKERS
from musedub.pipeline.dataset.tables import require_dataset
from musedub.pipeline.train.progress import BOARD, StepBoard

# what training reads of the clips table (a subset of tables.CLIP_SCHEMA; tests check it)
TRAIN_CLIP_COLUMNS = [
    "source_id",
    "clip_id",
    "start",
    "frames",
    "height",
    "landmarks",
    "boxes",
    "crop_bottom",
    "audio",
    "whisper",
    "whisper_shape",
    "face_min_px",
]


def storage_path(output: str) -> str:
    """Ray Train wants an absolute local path or a URI."""
    return str(local_path(output).resolve()) if is_local(output) else output


def read_columns(uri: str, columns: list[str]) -> pa.Table:
    """Some columns of one Parquet file; on object stores by ranged GETs of its footer and those
    column chunks only (no read-ahead block: a clip shard's audio and whisper columns are most of it)."""
    if is_local(uri):
        return pq.read_table(local_path(uri), columns=columns)
    fs, path = filesystem(uri)
    with fs.open(path, "rb", cache_type="none") as handle:
        return pq.read_table(handle, columns=columns)


def has_usable_clip(clips: str, at_least: dict[str, float]) -> bool:
    """Whether a row of the clips table under `clips` reaches every minimum. Read on the driver, shard
    by shard (the `.parquet` files the Ray read takes), and stops at the first usable row: a Ray Data
    count() of the filtered table cost seconds per run, before any worker started."""
    for name in list_tree(clips):
        if not name.endswith(".parquet"):
            continue
        table = read_columns(join_uri(clips, name), list(at_least))
        usable = reduce(pc.and_, [pc.greater_equal(table[column], low) for column, low in at_least.items()])
        if pc.any(usable).as_py():
            return True
    return False


def clips_dataset(dataset: str, min_face: int, frames: int, needs_sis: bool) -> Any:
    """The usable clips of a preprocessed dataset, checked before any worker starts."""
    sources = require_dataset(dataset)
    if needs_sis:
        indexed = {n.removesuffix(".json") for n in list_files(join_uri(dataset, SIS_MARKERS))}
        missing = [s for s in sources if s not in indexed]
        if missing:
            raise InputError(
                f"dataset {dataset} has {len(missing)} source(s) without SIS index: run `musedub index {dataset}`"
            )
    clips, at_least = join_uri(dataset, "clips"), {"face_min_px": min_face, "frames": frames}
    if not has_usable_clip(clips, at_least):
        raise InputError(
            f"dataset {dataset} has no clip of at least {frames} frames with faces of {min_face} px or more: "
            "lower min_face or preprocess larger faces"
        )
    return read_parquet(clips, TRAIN_CLIP_COLUMNS, at_least)


def fit(
    worker: Callable[[dict[str, Any]], None],
    values: dict[str, Any],
    config: Any,
    clips: Any,  # a Ray dataset from `clips_dataset`
    board: StepBoard | None = None,
) -> ray.train.Result:
    """Run `worker` on `config.num_workers` DDP workers; the result's checkpoint is the last one.
    With a `board`, rank 0 posts its phases and steps there."""
    trainer = TorchTrainer(
        worker,
        train_loop_config=values if board is None else {**values, BOARD: board.actor},
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=config.use_gpu,
            resources_per_worker={"CPU": config.cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=config.run_name,
            storage_path=storage_path(config.output),
            failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.keep_checkpoints),
        ),
        datasets={"clips": clips},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise ConfigError(f"training run {config.run_name} ended without a checkpoint: see the worker logs")
    return result
