"""Training our SyncNet on the preprocessed shards (`musedub train-syncnet CONFIG`), on Ray Train.

Each sample is the lower halves of 16 consecutive real crops with a mel window: the aligned one
(label 1) or one shifted by at least `min_shift` frames within the clip (label 0), half and
half. Loss: BCE of the cosine similarity. Checkpoints hold `syncnet/syncnet.pth + syncnet.json`,
the layout stage 2 reads from the weights folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import ray.train
import ray.train.torch
import torch
from pydantic import Field
from torch.nn import functional as F

from musedub.models.syncnet import SYNC_FRAMES, SYNCNET_CONFIG, TINY_SYNCNET_CONFIG, SyncNet
from musedub.pipeline.audio.log_mel import mel_window
from musedub.pipeline.train.config import RunSettings
from musedub.pipeline.train.data import ClipSampler
from musedub.pipeline.train.loop import clip_stream, report_checkpoint
from musedub.pipeline.train.progress import StepPoster, without_board
from musedub.pipeline.train.step import unwrap

log = logging.getLogger(__name__)


class SyncNetTrainConfig(RunSettings):
    dataset: str
    output: str
    run_name: str = "syncnet"
    size: Literal["full", "tiny"] = "full"
    steps: int = Field(default=100_000, gt=0)
    batch_size: int = Field(default=32, gt=0)
    lr: float = Field(default=1e-4, gt=0)
    min_shift: int = Field(default=5, gt=0)  # frames between a negative's audio and its faces
    min_face: int = 150

    # read by the shared clip filter and stream
    @property
    def frames_per_sample(self) -> int:
        return SYNC_FRAMES


def sync_pair(sampler: ClipSampler, row: dict[str, Any], min_shift: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(16, 3, 128, 256) lower halves in [-1, 1], (80, 64) mel, label."""
    sample = sampler.sample(row)
    faces = sample.targets[:, 128:].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1  # (16, 3, 128, 256)
    clip = sampler.current()
    first = int(sample.first)
    shifts = [s for s in range(clip["n"] - SYNC_FRAMES + 1) if abs(s - first) >= min_shift]
    if not shifts or sampler.rng.random() < 0.5:
        return faces, sample.mel, 1.0
    return faces, mel_window(clip["mel"], int(sampler.rng.choice(shifts))), 0.0


def syncnet_worker(config_values: dict[str, Any]) -> None:
    values, board = without_board(config_values)
    config = SyncNetTrainConfig(**values)
    rank = ray.train.get_context().get_world_rank()
    progress = StepPoster(board, rank)
    progress.phase("loading models", 0)
    device = ray.train.torch.get_device()
    torch.manual_seed(config.seed + rank)
    model = SyncNet(TINY_SYNCNET_CONFIG if config.size == "tiny" else SYNCNET_CONFIG).to(device)
    optimizer_state, step = None, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        progress.phase("restoring", 0)
        with checkpoint.as_directory() as folder:
            model = SyncNet.from_pretrained(Path(folder) / "syncnet").to(device)
            state = torch.load(Path(folder) / "train_state.pt", map_location="cpu", weights_only=True)
        optimizer_state, step = state["optimizer"], int(state["step"])
    model = ray.train.torch.prepare_model(model.train())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    sampler = ClipSampler(
        config.dataset, SYNC_FRAMES, (10.0, 0.0, 20), seed=config.seed * 7919 + rank + step, references=False
    )
    rows = clip_stream(
        ray.train.get_dataset_shard("clips"), _PairSampler(sampler, config.min_shift), config.samples_per_clip
    )
    progress.begin(step)
    while step < config.steps:
        faces, mels, labels = zip(*[next(rows) for _ in range(config.batch_size)], strict=True)
        similarity = model(torch.from_numpy(np.stack(faces)).to(device), torch.from_numpy(np.stack(mels)).to(device))
        loss = F.binary_cross_entropy(similarity.clamp(1e-6, 1 - 1e-6), torch.tensor(labels, device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        metrics = {"step": step, "loss": float(loss.detach())}
        progress.step(step, metrics["loss"])
        if rank == 0 and (step % config.log_every == 0 or step == 1):
            log.info("syncnet step %d: loss %.5f", step, metrics["loss"])
        if step % config.checkpoint_every == 0 or step == config.steps:
            progress.phase("saving", step)

            def save(folder: Path, step: int = step) -> None:
                unwrap(model).save_pretrained(folder / "syncnet")
                torch.save({"step": step, "optimizer": optimizer.state_dict()}, folder / "train_state.pt")

            report_checkpoint(metrics, step, rank, save)
    progress.phase("done", step)


class _PairSampler:
    """Adapts `sync_pair` to the `sample(row)` interface `clip_stream` draws from."""

    def __init__(self, sampler: ClipSampler, min_shift: int) -> None:
        self.sampler = sampler
        self.min_shift = min_shift

    def sample(self, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
        return sync_pair(self.sampler, row, self.min_shift)
