"""The style generator's predictor or renderer as a `TrainTask` of the shared Ray Train loop.

A checkpoint holds `style/predictor.json + predictor.safetensors` (or the renderer's), the
project's style layout, so copying that folder's files into a weights folder's `style/` makes
weights `StylePredictor.from_pretrained` / `StyleRenderer.from_pretrained` load strictly, and
`train_state.pt` (step, restarts, optimiser). Resume is the loop's: Ray Train's last checkpoint
after a worker dies, or the same output and run name again.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from torch import nn

from musedub.infra.errors import ConfigError
from musedub.models.style_predictor import STYLE_PREDICTOR_CONFIG, TINY_STYLE_PREDICTOR_CONFIG, StylePredictor
from musedub.models.style_renderer import STYLE_RENDERER_CONFIG, TINY_STYLE_RENDERER_CONFIG, DDIMSampler, StyleRenderer
from musedub.models.vgg19 import VGG19Features
from musedub.models.weights.store import ModelStore
from musedub.pipeline.train.loop import run_task
from musedub.pipeline.train.progress import without_board
from musedub.pipeline.train.step import unwrap
from musedub.pipeline.train.style_config import StyleTrainConfig
from musedub.pipeline.train.style_data import SpeakerSampler
from musedub.pipeline.train.style_step import (
    RendererModels,
    StyleStep,
    predictor_batch,
    predictor_losses,
    renderer_batch,
    renderer_losses,
)

STYLE_DIR = "style"
STATE_FILE = "train_state.pt"


def style_folder(uri: str) -> Path:
    """A weights folder's style/ (or a folder that is one already), e.g. a checkpoint's."""
    root = ModelStore(uri).layout.root
    return root / STYLE_DIR if (root / STYLE_DIR).is_dir() else root


def build_style_model(config: StyleTrainConfig) -> nn.Module:
    """The model a run starts from: `start_from`'s, loaded strictly, or a random one of `size`."""
    model_cls = StylePredictor if config.kind == "predictor" else StyleRenderer
    if config.start_from:
        return model_cls.from_pretrained(style_folder(config.start_from))
    if config.kind == "predictor":
        return StylePredictor(TINY_STYLE_PREDICTOR_CONFIG if config.size == "tiny" else STYLE_PREDICTOR_CONFIG)
    return StyleRenderer(TINY_STYLE_RENDERER_CONFIG if config.size == "tiny" else STYLE_RENDERER_CONFIG)


class StyleTask:
    """One style model, its frozen helpers (the renderer's VAE and VGG19), samples and checkpoints."""

    def __init__(self, config: StyleTrainConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.model = build_style_model(config).to(device).train().requires_grad_(True)
        self.helpers: RendererModels | None = None
        if config.kind == "renderer":
            store = ModelStore(config.weights)
            vae = store.load_vae().to(device).eval().requires_grad_(False)
            vgg = VGG19Features.from_file(store.layout.vgg19).to(device) if config.perceptual > 0 else None
            self.helpers = RendererModels(renderer=self.model, vae=vae, vgg=vgg)
        self.trainer: StyleStep | None = None

    def restore(self, folder: Path) -> dict[str, Any]:
        loaded = type(unwrap(self.model)).from_pretrained(folder / STYLE_DIR)  # type: ignore[attr-defined]
        unwrap(self.model).load_state_dict(loaded.state_dict())
        return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)

    def prepare(self, state: dict[str, Any] | None) -> None:
        self.model = ray.train.torch.prepare_model(self.model)
        if self.helpers is not None:
            self.helpers.renderer = self.model
            sampler = DDIMSampler(unwrap(self.model).config)  # type: ignore[arg-type]
            losses = partial(renderer_losses, self.helpers, sampler, config=self.config)
            self.trainer = StyleStep(self.model, losses, self.config)
        else:
            self.trainer = StyleStep(self.model, self._predictor_losses, self.config)
        if state is not None:
            self.trainer.optimizer.load_state_dict(state["optimizer"])

    def _predictor_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return predictor_losses(self.model, batch, self.config)

    def sampler(self, seed: int) -> SpeakerSampler:
        c = self.config
        return SpeakerSampler(
            c.dataset, c.kind, c.frames, c.references, c.reference_frames, c.exclusion, c.margin, seed=seed
        )

    def collate(self, samples: list[Any]) -> dict[str, torch.Tensor]:
        if self.config.kind == "predictor":
            return predictor_batch(samples, self.device)
        return renderer_batch(samples, self.device)

    def step(self, micro_batches: list[Any], step: int) -> dict[str, float]:
        assert self.trainer is not None, "prepare() first"
        return self.trainer(micro_batches, step)

    def save(self, folder: Path, step: int, starts: list[int]) -> None:
        assert self.trainer is not None, "prepare() first"
        unwrap(self.model).save_pretrained(folder / STYLE_DIR)  # type: ignore[operator]
        state = {
            "step": step,
            "starts": starts,
            "config": self.config.model_dump_json(),
            "optimizer": self.trainer.optimizer.state_dict(),
        }
        torch.save(state, folder / STATE_FILE)


def style_worker(config_values: dict[str, Any]) -> None:
    values, board = without_board(config_values)
    config = StyleTrainConfig(**values)
    run_task(config, partial(StyleTask, config), board)


def check_style_run(config: StyleTrainConfig, audio_dim: int | None) -> None:
    """Fail before the cluster starts when the run cannot work: the start model, the renderer's VAE and
    VGG19, and the predictor's audio width against the dataset's whisper states (`audio_dim`)."""
    if config.kind == "renderer":
        layout = ModelStore(config.weights).layout
        if not (layout.vae / "config.json").is_file():
            raise ConfigError(f"the renderer trains in sd-vae's latent space: {layout.vae} is missing from the weights")
        if config.perceptual > 0 and not layout.vgg19.is_file():
            raise ConfigError(
                f"{layout.vgg19} is missing for the perceptual loss: `musedub weights download` fetches it, "
                "or set perceptual: 0"
            )
    if config.start_from:
        model = build_style_model(config)  # loads strictly: a bad folder fails here, not in a worker
        width = getattr(model.config, "audio_dim", None)
    else:
        width = (TINY_STYLE_PREDICTOR_CONFIG if config.size == "tiny" else STYLE_PREDICTOR_CONFIG).audio_dim
    if config.kind == "predictor" and audio_dim is not None and audio_dim != width:
        raise ConfigError(
            f"dataset {config.dataset} holds whisper states of width {audio_dim} and the predictor reads {width}: "
            "train the size that matches the whisper the dataset was preprocessed with (tiny: the test weights')"
        )
