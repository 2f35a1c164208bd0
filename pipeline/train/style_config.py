"""The configuration of a style-generator training run (`musedub train-style predictor|renderer CONFIG`).

A model of its own rather than a `stage` of `TrainConfig`: the two share the run fields
(`RunSettings`: checkpoints, workers, logs) but not the model fields, and TrainConfig's stage defaults and checks
are MuseTalk's. Loss weights are our choices (docs/STYLE.md): no published figures exist.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from musedub.pipeline.train.config import RunSettings

StyleModelKind = Literal["predictor", "renderer"]


class StyleTrainConfig(RunSettings):
    kind: StyleModelKind  # the command's positional argument
    dataset: str  # written by `musedub preprocess` (landmarks, whisper features; crops for the renderer)
    output: str  # Ray Train storage: checkpoints under OUTPUT/RUN_NAME
    run_name: str = ""  # default: style-<kind>
    weights: str = "weights"  # the renderer's frozen VAE (sd-vae/) and, for its perceptual loss, vgg19/
    size: Literal["full", "tiny"] = "full"  # the architecture a fresh run starts from (random init)
    start_from: str | None = None  # a weights folder (or its style/ folder) whose model this run starts from
    steps: int = Field(default=100_000, gt=0)
    batch_size: int = Field(default=16, gt=0)
    grad_accum: int = Field(default=1, gt=0)
    lr: float = Field(default=1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    frames: int = Field(default=50, gt=1)  # predictor: frames of a driving window (2 s at 25 fps)
    references: int = Field(default=4, gt=0)  # most reference windows (predictor) or faces (renderer) a sample gets
    reference_frames: int = Field(default=50, gt=0)  # predictor: frames of a reference window
    exclusion: int = Field(default=5, ge=0)  # frames kept between the target window and any reference
    margin: int = Field(default=10, ge=0, le=20)  # px below the chin of the rendered crop (dub's extra_margin)
    min_face: int = Field(default=150, ge=0)
    l1: float = Field(default=1.0, ge=0)  # predictor: L1 on the mouth points
    l2: float = Field(default=0.0, ge=0)  # predictor: MSE on the mouth points
    velocity: float = Field(default=1.0, ge=0)  # predictor: L1 on frame-to-frame point motion
    perceptual: float = Field(default=0.0, ge=0)  # renderer: VGG19 loss on decoded crops (0: off)

    @model_validator(mode="before")
    @classmethod
    def _run_name(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("run_name") and values.get("kind"):
            return {**values, "run_name": f"style-{values['kind']}"}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> StyleTrainConfig:
        if self.kind == "predictor" and self.l1 + self.l2 + self.velocity == 0:
            raise ValueError("the predictor needs a loss: set l1, l2 or velocity above 0")
        return self

    @property
    def frames_per_sample(self) -> int:
        """Frames a clip needs to give a target window (the shared clip filter reads it)."""
        return self.frames if self.kind == "predictor" else 1
