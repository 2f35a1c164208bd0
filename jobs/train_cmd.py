"""`musedub train CONFIG` (MuseTalk stage 1 or 2) and `musedub train-syncnet CONFIG`, on Ray Train."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer

from musedub.infra.errors import ConfigError
from musedub.infra.ray_cluster import connect
from musedub.jobs.item_lines import ItemLines, Tally
from musedub.jobs.job_flags import Address, NumCpus
from musedub.jobs.progress_bars import item_progress
from musedub.models.weights.store import ModelStore
from musedub.pipeline.train.config import TrainConfig, load_config
from musedub.pipeline.train.loop import train_worker
from musedub.pipeline.train.progress import StepBoard
from musedub.pipeline.train.run import clips_dataset, fit
from musedub.pipeline.train.syncnet import SyncNetTrainConfig, syncnet_worker

log = logging.getLogger(__name__)
ConfigPath = Annotated[str, typer.Argument(metavar="CONFIG", help="YAML or JSON config (path or URI).")]


def check_training_weights(config: TrainConfig) -> None:
    """Fail before the cluster starts when a model the run needs is missing from the weights folder."""
    layout = ModelStore(config.weights).layout
    if not layout.vgg19.is_file():
        raise ConfigError(
            f"{layout.vgg19} is missing: put torchvision's vgg19-dcbb9e9d.pth there (`musedub weights download` "
            "fetches it) or `musedub weights init-random --training` offline"
        )
    if config.stage == 2 and config.sync > 0 and not (layout.syncnet / "syncnet.json").is_file():
        raise ConfigError(
            f"stage 2's sync loss needs a SyncNet in {layout.syncnet}: train one with `musedub train-syncnet` "
            "and copy its checkpoint's syncnet/ folder there"
        )


def follow(board: StepBoard, progress: ItemLines) -> None:
    """A progress poller: rank 0's latest post."""
    post = board.latest()
    if post is not None:
        progress.phase(post.phase)
        progress.advance(post.step, "" if post.loss is None else f"loss {post.loss:.4g}", post.rate)


def run_fit(
    what: str,
    worker: Callable[[dict[str, Any]], None],
    config: Any,
    needs_sis: bool,
    address: str | None,
    cpus: int | None,
) -> Any:
    """Connect, read the clips and fit (a `ray.train.Result`), with each phase, then steps/s, loss and
    ETA shown from the first second."""
    connect(address, cpus, log_to_driver=True)
    with StepBoard() as board, item_progress(Tally(what, config.steps, "steps", failures=False)) as progress:
        progress.watch(lambda: follow(board, progress))
        progress.phase("reading clips")
        clips = clips_dataset(config.dataset, config.min_face, config.frames_per_sample, needs_sis=needs_sis)
        progress.phase("starting workers")
        return fit(worker, config.model_dump(), config, clips, board)


def train(config_uri: ConfigPath, address: Address = None, num_cpus: NumCpus = None) -> None:
    """Train MuseTalk's UNet (stage 1: L1 + VGG; stage 2: + GANs, feature matching, sync) with DDP."""
    config = load_config(config_uri, TrainConfig)
    log.info("train config: %s", config.model_dump_json())
    check_training_weights(config)
    result = run_fit("train", train_worker, config, True, address, num_cpus)
    typer.echo(f"checkpoint: {result.checkpoint.path} (musetalkV15/unet.pth + musetalk.json)")
    typer.echo(f"metrics: {result.metrics}")


def train_syncnet(config_uri: ConfigPath, address: Address = None, num_cpus: NumCpus = None) -> None:
    """Train the SyncNet the stage-2 sync loss and LSE metrics use, on the same shards."""
    config = load_config(config_uri, SyncNetTrainConfig)
    log.info("syncnet config: %s", config.model_dump_json())
    result = run_fit("train-syncnet", syncnet_worker, config, False, address, num_cpus)
    typer.echo(f"checkpoint: {result.checkpoint.path} (syncnet/syncnet.pth + syncnet.json)")
    typer.echo(f"metrics: {result.metrics}")
