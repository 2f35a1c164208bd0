"""The Ray Train worker loop every model trains in (`run_task` over a `TrainTask`), and MuseTalk's task
and checkpoints.

A checkpoint holds `musetalkV15/unet.pth` + `musetalk.json` (the published layout, which
`musedub dub` loads unchanged) and `train_state.pt` (step, optimisers, discriminators). After a
worker dies Ray Train restarts the workers and `ray.train.get_checkpoint()` hands back the last
one; a rerun with the same output and run name resumes the same way.
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import ray.train
import ray.train.torch
import torch

from musedub.infra.errors import ConfigError
from musedub.models.syncnet import SyncNet
from musedub.models.unet import MuseTalkUNet
from musedub.models.vgg19 import VGG19Features
from musedub.models.weights.layout import UNET_DIRS, WeightsLayout
from musedub.models.weights.store import ModelStore
from musedub.pipeline.train.config import TrainConfig
from musedub.pipeline.train.data import ClipSampler, collate
from musedub.pipeline.train.progress import StepPoster, without_board
from musedub.pipeline.train.step import TrainModels, TrainStep, build_discriminators, unwrap

log = logging.getLogger(__name__)
STATE_FILE = "train_state.pt"


def load_start_unet(config: TrainConfig, layout: WeightsLayout) -> MuseTalkUNet:
    """The UNet to train from: `unet_from` (a folder with unet.pth + musetalk.json) or the weights' v1.5."""
    if config.unet_from:
        folder = ModelStore(config.unet_from).layout.root
        folder = folder / UNET_DIRS["v1.5"] if (folder / UNET_DIRS["v1.5"]).is_dir() else folder
        return MuseTalkUNet.from_pretrained(folder / "musetalk.json", folder / "unet.pth")
    layout.check("v1.5")
    return MuseTalkUNet.from_pretrained(layout.unet_config("v1.5"), layout.unet_weights("v1.5"))


def build_models(config: TrainConfig, device: torch.device) -> TrainModels:
    """Unwrapped models on `device`: the UNet trainable, everything else frozen except discriminators."""
    store = ModelStore(config.weights)
    layout = store.layout
    unet = load_start_unet(config, layout).to(device).train().requires_grad_(True)
    vae = store.load_vae().to(device).eval().requires_grad_(False)
    vgg = VGG19Features.from_file(layout.vgg19).to(device)
    models = TrainModels(unet=unet, vae=vae, vgg=vgg)
    if config.stage == 2:
        if config.gan_face > 0 or config.gan_mouth > 0:
            face_d, mouth_d = build_discriminators(config.discriminator_width)
            models.face_d = face_d.to(device) if config.gan_face > 0 else None
            models.mouth_d = mouth_d.to(device) if config.gan_mouth > 0 else None
        if config.sync > 0:
            models.syncnet = SyncNet.from_pretrained(layout.syncnet).to(device).requires_grad_(False)
    return models


def save_checkpoint(folder: Path, step: int, trainer: TrainStep, config: TrainConfig, starts: list[int]) -> None:
    """`starts`: the step each (re)start of the run began at, so a resume is visible afterwards."""
    unet = unwrap(trainer.models.unet)
    assert isinstance(unet, MuseTalkUNet)
    unet.save_pretrained(folder / UNET_DIRS["v1.5"] / "musetalk.json", folder / UNET_DIRS["v1.5"] / "unet.pth")
    state: dict[str, Any] = {
        "step": step,
        "starts": starts,
        "config": config.model_dump_json(),
        "generator_opt": trainer.generator_opt.state_dict(),
    }
    if trainer.discriminator_opt is not None:
        state["discriminator_opt"] = trainer.discriminator_opt.state_dict()
    for name in ("face_d", "mouth_d"):
        module = getattr(trainer.models, name)
        if module is not None:
            state[name] = unwrap(module).state_dict()
    torch.save(state, folder / STATE_FILE)


def restore(folder: Path, models: TrainModels) -> dict[str, Any]:
    """Load the UNet and discriminators of a checkpoint into unwrapped models; returns its state."""
    unet_dir = folder / UNET_DIRS["v1.5"]
    loaded = MuseTalkUNet.from_pretrained(unet_dir / "musetalk.json", unet_dir / "unet.pth")
    unwrap(models.unet).load_state_dict(loaded.state_dict())
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    for name in ("face_d", "mouth_d"):
        module = getattr(models, name)
        if module is not None and name in state:
            module.load_state_dict(state[name])
    return state


class RowSampler(Protocol):
    def sample(self, row: dict[str, Any]) -> Any: ...


def clip_stream(shard: Any, sampler: RowSampler, per_clip: int) -> Iterator[Any]:
    """Samples forever: `per_clip` from each clip row of the worker's shard, epoch after epoch."""
    for epoch in itertools.count():
        seen = 0
        for row in shard.iter_rows():
            seen += 1
            for _ in range(per_clip):
                yield sampler.sample(row)
        if seen == 0:
            raise ConfigError(
                f"a training worker got no clips in epoch {epoch}: the dataset has fewer usable clips than "
                "workers (check min_face / frames_per_sample) or reduce num_workers"
            )


class TrainTask(Protocol):
    """What one kind of training brings to the shared worker loop (`run_task`): its models, samples,
    step and checkpoint files. The loop owns seeding, resume, progress posts, logs and checkpoints."""

    def restore(self, folder: Path) -> dict[str, Any]:
        """Load a checkpoint's models into the (unwrapped) models; return its train state."""
        ...

    def prepare(self, state: dict[str, Any] | None) -> None:
        """Wrap the trained models for DDP, build the optimisers, load their state when resuming."""
        ...

    def sampler(self, seed: int) -> RowSampler: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def step(self, micro_batches: list[Any], step: int) -> dict[str, float]:
        """One optimiser step over the micro-batches; metrics with a "total"."""
        ...

    def save(self, folder: Path, step: int, starts: list[int]) -> None: ...


def run_task(config: Any, build: Callable[[torch.device], TrainTask], board: Any) -> None:
    """The worker loop every model trains in: seed, build the task, resume from Ray Train's checkpoint,
    then steps, with a log line every `log_every` and a checkpoint every `checkpoint_every` steps."""
    rank = ray.train.get_context().get_world_rank()
    progress = StepPoster(board, rank)
    progress.phase("loading models", 0)
    device = ray.train.torch.get_device()
    torch.manual_seed(config.seed + rank)
    task = build(device)
    step, state = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        progress.phase("restoring", 0)
        with checkpoint.as_directory() as folder:
            state = task.restore(Path(folder))
        step = int(state["step"])
        log.info("resuming %s at step %d", config.run_name, step)
    starts = [*state.get("starts", []), step] if state is not None else [0]
    task.prepare(state)
    sampler = task.sampler(config.seed * 7919 + rank + step)
    samples = clip_stream(ray.train.get_dataset_shard("clips"), sampler, config.samples_per_clip)
    progress.begin(step)
    while step < config.steps:
        micro = [task.collate([next(samples) for _ in range(config.batch_size)]) for _ in range(config.grad_accum)]
        metrics = task.step(micro, step)
        step += 1
        progress.step(step, metrics["total"])
        metrics["step"] = step
        if rank == 0 and (step % config.log_every == 0 or step == 1):
            log.info("step %d: %s", step, json.dumps({k: round(v, 5) for k, v in metrics.items()}))
        if step % config.checkpoint_every == 0 or step == config.steps:
            progress.phase("saving", step)
            report_checkpoint(metrics, step, rank, partial(task.save, step=step, starts=starts))
    progress.phase("done", step)


class MuseTalkTask:
    """MuseTalk's UNet (stage 1 or 2) with its discriminators, as a `TrainTask`."""

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.models = build_models(config, device)
        self.trainer: TrainStep | None = None

    def restore(self, folder: Path) -> dict[str, Any]:
        return restore(folder, self.models)

    def prepare(self, state: dict[str, Any] | None) -> None:
        models = self.models
        models.unet = ray.train.torch.prepare_model(models.unet)
        for name in ("face_d", "mouth_d"):
            if getattr(models, name) is not None:
                setattr(models, name, ray.train.torch.prepare_model(getattr(models, name)))
        self.trainer = TrainStep(models, self.config, self.device)
        if state is not None:
            self.trainer.generator_opt.load_state_dict(state["generator_opt"])
            if self.trainer.discriminator_opt is not None and "discriminator_opt" in state:
                self.trainer.discriminator_opt.load_state_dict(state["discriminator_opt"])

    def sampler(self, seed: int) -> ClipSampler:
        config = self.config
        margins = (config.margin_mean, config.margin_std, config.margin_max)
        return ClipSampler(config.dataset, config.frames_per_sample, margins, seed=seed)

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        return collate(samples)

    def step(self, micro_batches: list[Any], step: int) -> dict[str, float]:
        assert self.trainer is not None, "prepare() first"
        return self.trainer(micro_batches, step)

    def save(self, folder: Path, step: int, starts: list[int]) -> None:
        assert self.trainer is not None, "prepare() first"
        save_checkpoint(folder, step, self.trainer, self.config, starts)


def train_worker(config_values: dict[str, Any]) -> None:
    values, board = without_board(config_values)
    config = TrainConfig(**values)
    run_task(config, partial(MuseTalkTask, config), board)


def report_checkpoint(metrics: dict[str, float], step: int, rank: int, save: Callable[[Path], None]) -> None:
    """Every worker reports; rank 0 attaches the checkpoint `save(folder)` writes (DDP keeps the
    other ranks' models identical)."""
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            save(Path(folder))
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"step-{step:08d}")
