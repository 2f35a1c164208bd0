"""`musedub schema NAME`: the JSON Schema of a command's options or of a manifest row.

Every command's options are one pydantic model; the CLI validates its flags through it, and
config files and manifests are read with it, so this is what each accepts.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import BaseModel

from musedub.infra.errors import ConfigError
from musedub.pipeline.dataset.settings import PreprocessSettings
from musedub.pipeline.dataset.sis import SisSettings
from musedub.pipeline.dub.batch import BatchSettings
from musedub.pipeline.dub.manifest import JobSpec
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.evaluation.stage import EvalSettings
from musedub.pipeline.train.config import TrainConfig
from musedub.pipeline.train.syncnet import SyncNetTrainConfig

MODELS: dict[str, type[BaseModel]] = {
    "dub": DubOptions,
    "manifest": JobSpec,
    "batch": BatchSettings,
    "catalog": BatchSettings,
    "preprocess": PreprocessSettings,
    "index": SisSettings,
    "train": TrainConfig,
    "train-syncnet": SyncNetTrainConfig,
    "eval": EvalSettings,
}


def schema(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(MODELS)}.")],
) -> None:
    """Print the JSON Schema of a command's options (or of a manifest row)."""
    if name not in MODELS:
        raise ConfigError(f"no schema called {name!r}: give one of {', '.join(MODELS)}")
    typer.echo(json.dumps(MODELS[name].model_json_schema(), indent=2))
