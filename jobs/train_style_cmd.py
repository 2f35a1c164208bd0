"""`musedub train-style predictor|renderer CONFIG`: the style generator's models on Ray Train."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated

import typer

from musedub.jobs.job_flags import Address, NumCpus
from musedub.jobs.train_cmd import ConfigPath, run_fit
from musedub.pipeline.train.config import load_config
from musedub.pipeline.train.style_config import StyleTrainConfig
from musedub.pipeline.train.style_data import dataset_audio_dim
from musedub.pipeline.train.style_task import check_style_run, style_worker

log = logging.getLogger(__name__)


class StyleModel(StrEnum):
    predictor = "predictor"
    renderer = "renderer"


def train_style(
    model: Annotated[StyleModel, typer.Argument(metavar="MODEL", help="predictor (lip motion) or renderer.")],
    config_uri: ConfigPath,
    address: Address = None,
    num_cpus: NumCpus = None,
) -> None:
    """Train the style generator's lip-motion predictor or renderer (docs/STYLE.md) with DDP."""
    config = load_config(config_uri, StyleTrainConfig, {"kind": model.value})
    log.info("train-style config: %s", config.model_dump_json())
    check_style_run(config, dataset_audio_dim(config.dataset) if config.kind == "predictor" else None)
    result = run_fit(f"train-style {config.kind}", style_worker, config, False, address, num_cpus)
    typer.echo(f"checkpoint: {result.checkpoint.path} (style/{config.kind}.json + {config.kind}.safetensors)")
    typer.echo(f"metrics: {result.metrics}")
