"""The MuseTalk training loop as a Ray Train worker function, and its checkpoints.

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


def train_worker(config_values: dict[str, Any]) -> None:
    config = TrainConfig(**config_values)
    context = ray.train.get_context()
    rank = context.get_world_rank()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.seed + rank)
    models = build_models(config, device)
    step, state = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = restore(Path(folder), models)
        step = int(state["step"])
        log.info("resuming %s at step %d", config.run_name, step)
    starts = [*state.get("starts", []), step] if state is not None else [0]
    models.unet = ray.train.torch.prepare_model(models.unet)
    for name in ("face_d", "mouth_d"):
        if getattr(models, name) is not None:
            setattr(models, name, ray.train.torch.prepare_model(getattr(models, name)))
    trainer = TrainStep(models, config, device)
    if state is not None:
        trainer.generator_opt.load_state_dict(state["generator_opt"])
        if trainer.discriminator_opt is not None and "discriminator_opt" in state:
            trainer.discriminator_opt.load_state_dict(state["discriminator_opt"])
    margins = (config.margin_mean, config.margin_std, config.margin_max)
    sampler = ClipSampler(config.dataset, config.frames_per_sample, margins, seed=config.seed * 7919 + rank + step)
    samples = clip_stream(ray.train.get_dataset_shard("clips"), sampler, config.samples_per_clip)
    while step < config.steps:
        micro = [collate([next(samples) for _ in range(config.batch_size)]) for _ in range(config.grad_accum)]
        metrics = trainer(micro, step)
        step += 1
        metrics["step"] = step
        if rank == 0 and (step % config.log_every == 0 or step == 1):
            log.info("step %d: %s", step, json.dumps({k: round(v, 5) for k, v in metrics.items()}))
        if step % config.checkpoint_every == 0 or step == config.steps:
            save = partial(save_checkpoint, step=step, trainer=trainer, config=config, starts=starts)
            report_checkpoint(metrics, step, rank, save)


def report_checkpoint(metrics: dict[str, float], step: int, rank: int, save: Callable[[Path], None]) -> None:
    """Every worker reports; rank 0 attaches the checkpoint `save(folder)` writes (DDP keeps the
    other ranks' models identical)."""
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            save(Path(folder))
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"step-{step:08d}")
