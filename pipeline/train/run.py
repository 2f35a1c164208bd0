"""The driver side of training: the clip dataset, the TorchTrainer, and what a run produced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray.train
from ray.train.torch import TorchTrainer

from musedub.infra.errors import ConfigError, InputError
from musedub.infra.storage import is_local, join_uri, list_files, local_path
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
    usable = read_parquet(join_uri(dataset, "clips"), TRAIN_CLIP_COLUMNS, {"face_min_px": min_face, "frames": frames})
    if usable.count() == 0:
        raise InputError(
            f"dataset {dataset} has no clip of at least {frames} frames with faces of {min_face} px or more: "
            "lower min_face or preprocess larger faces"
        )
    return usable


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
