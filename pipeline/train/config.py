"""The configuration of a training run, validated and logged at start.

Stage defaults are MuseTalk's (../shared/REFERENCE.md); a config file sets `stage` and overrides
what it needs. Feature-matching weight (not given by the reference) is our choice: 10x the GAN
weight, the ratio pix2pixHD uses.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from musedub.infra.errors import ConfigError
from musedub.infra.storage import read_bytes

STAGE_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {
        "batch_size": 32,
        "grad_accum": 1,
        "lr": 2e-5,
        "steps": 250_000,
        "frames_per_sample": 1,
        "min_face": 150,
    },
    2: {
        "batch_size": 2,
        "grad_accum": 8,
        "lr": 5e-6,
        "steps": 100_000,
        "frames_per_sample": 16,
        "min_face": 200,
        "gan_face": 0.01,
        "gan_mouth": 0.01,
        "feature_matching": 0.1,
        "sync": 0.05,
    },
}


class RunSettings(BaseModel):
    """How every training run (MuseTalk, SyncNet, style) is spread, checkpointed and logged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples_per_clip: int = Field(default=4, gt=0)  # drawn per clip visit: amortises reading its crops
    checkpoint_every: int = Field(default=1000, gt=0)
    keep_checkpoints: int = Field(default=3, gt=0)
    num_workers: int = Field(default=1, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1.0, gt=0)
    max_failures: int = 3  # worker restarts from the last checkpoint before the run fails
    seed: int = 0
    log_every: int = Field(default=10, gt=0)


class TrainConfig(RunSettings):
    stage: Literal[1, 2]
    dataset: str  # written by `musedub preprocess` and `musedub index`
    output: str  # Ray Train storage: checkpoints under OUTPUT/RUN_NAME
    run_name: str = "musetalk"
    weights: str = "weights"  # sd-vae, whisper, vgg19/, syncnet/ and the UNet to start from
    unet_from: str | None = None  # a folder with unet.pth + musetalk.json (e.g. a stage-1 export)
    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    grad_accum: int = Field(gt=0)
    lr: float = Field(gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.01
    frames_per_sample: int = Field(gt=0)
    min_face: int = Field(ge=0)
    l1: float = 1.0
    perceptual: float = 0.01
    gan_face: float = 0.0
    gan_mouth: float = 0.0
    feature_matching: float = 0.0
    sync: float = 0.0
    gan_start: int = 1000  # GAN and feature matching off before this step
    discriminator_lr: float | None = None  # default: the generator's
    discriminator_width: int = Field(default=64, gt=0)
    margin_mean: float = 10.0  # dynamic margin sampling: bottom margin ~ N(mean, std) clipped
    margin_std: float = 10.0
    margin_max: int = 20
    # Forward passes and losses under bf16 autocast (weights, gradients and optimiser states stay fp32).
    # auto: bf16 on a GPU that has it, fp32 on a CPU (as inference's `--dtype auto`).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Recompute the UNet's, the VAE decoder's and VGG19's activations in the backward pass instead of keeping
    # them: the same gradients for one more forward pass of those models, and most of their memory back.
    activation_checkpointing: bool = False

    @model_validator(mode="before")
    @classmethod
    def _stage_defaults(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("stage") in STAGE_DEFAULTS:
            return {**STAGE_DEFAULTS[values["stage"]], **values}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.stage == 2 and self.sync > 0 and self.frames_per_sample != 16:
            raise ValueError("the sync loss reads 16 consecutive frames: set frames_per_sample: 16")
        if not 0 <= self.margin_max <= 20:
            raise ValueError("margin_max must lie in [0, 20]: preprocess stores crops down to a 20 px margin")
        return self


def load_config(uri: str, model: type[BaseModel], fixed: dict[str, Any] | None = None) -> Any:
    """A YAML or JSON config file -> a validated `model`; a bad field is named in one line. `fixed`:
    values the command line gives (a file may repeat them, not contradict them)."""
    text = read_bytes(uri, "training config").decode()
    try:
        values = json.loads(text) if uri.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"training config {uri} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"training config {uri} must be a mapping of settings")
    for key, value in (fixed or {}).items():
        if values.setdefault(key, value) != value:
            raise ConfigError(f"training config {uri}: {key}: {values[key]!r} contradicts the command's {value!r}")
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"training config {uri}: {where}: {first['msg']}") from None
