"""`musedub preprocess SRC OUT` and `musedub index OUT`: training data on the Ray cluster."""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Annotated

import typer

from musedub.infra.errors import ConfigError
from musedub.infra.ray_cluster import connect
from musedub.jobs.item_lines import FailureWatch, ItemLines, Tally
from musedub.jobs.job_flags import Address, DetectEvery, Landmarks, NumCpus, Weights, check_uris, validated
from musedub.jobs.progress_bars import item_progress
from musedub.models.landmarks import S3FD_FILE, dlib_predictor_path
from musedub.models.weights.store import DEFAULT_WEIGHTS, ModelStore
from musedub.pipeline.core.run import Run
from musedub.pipeline.dataset.preprocess import plan_preprocess, run_preprocess, runs_root, summarise
from musedub.pipeline.dataset.settings import PreprocessSettings
from musedub.pipeline.dataset.sis import SisSettings
from musedub.pipeline.dataset.sis_index import plan_index, run_index
from musedub.pipeline.dataset.tables import source_of

log = logging.getLogger(__name__)


def check_models(settings: PreprocessSettings) -> None:
    """Fail before any work when the landmark model or whisper is missing (every source would fail)."""
    layout = ModelStore(settings.weights).layout
    if settings.landmarks == "dlib":
        dlib_predictor_path()
    elif not (layout.face_alignment / S3FD_FILE).is_file():
        raise ConfigError(
            f"face-alignment weights are missing from {layout.face_alignment}: run `musedub weights download`, "
            "or use --landmarks dlib"
        )
    if settings.features and not (layout.whisper / "config.json").is_file():
        raise ConfigError(f"--features needs whisper in {layout.whisper}: run `musedub weights download`")


def _report(progress: ItemLines, summary: dict) -> None:
    if summary["status"] == "ok":
        detail = (
            f"{summary['clips']} clips, {summary['kept']}/{summary['frames']} frames kept "
            f"(dropped {summary['dropped']}) in {summary['elapsed']:.1f} s"
        )
        progress.done(summary["source_id"], summary["frames"], detail)
    else:
        progress.failed(summary["source_id"], summary["error"])


def _by_source(progress: ItemLines, run: Run) -> ItemLines:
    """Failures as workers record them, counted once per source (a row may be one span of it)."""
    return progress.watch(FailureWatch(run.errors, lambda item, message: progress.failed(source_of(item), message)))


def preprocess(
    src: Annotated[str, typer.Argument(metavar="SRC_URI", help="Folder or bucket prefix of videos (recursive).")],
    out: Annotated[str, typer.Argument(metavar="OUT_URI", help="Dataset folder or URI to write.")],
    weights: Weights = DEFAULT_WEIGHTS,
    landmarks: Landmarks = "face-alignment",
    detect_every: DetectEvery = 5,
    clip_seconds: Annotated[float, typer.Option(help="Longest clip; clips also end at shot cuts.")] = 30.0,
    shard_seconds: Annotated[
        float, typer.Option(help="Cut longer sources into spans of this length, processed in parallel.")
    ] = 300.0,
    min_clip_frames: Annotated[int, typer.Option(help="Shorter runs of usable face frames are dropped.")] = 25,
    min_face: Annotated[int, typer.Option(help="Frames with a smaller face (px) are dropped (stage 1).")] = 150,
    stage2_min_face: Annotated[int, typer.Option(help="Clips whose faces are all this big are stage-2 clips.")] = 200,
    crops: Annotated[bool, typer.Option(help="Store the 256x256 crops (JPEG), so training decodes no video.")] = True,
    features: Annotated[bool, typer.Option(help="Store whisper states per clip.")] = True,
    speaking_only: Annotated[
        bool, typer.Option(help="Keep only frames where the face speaks in the source (mouth vs loudness).")
    ] = False,
    retry_failed: Annotated[bool, typer.Option(help="Try sources that failed before again.")] = False,
    address: Address = None,
    num_cpus: NumCpus = None,
) -> None:
    """Cut videos into 25 fps training clips with landmarks, crops and whisper features (Parquet)."""
    check_uris(source_folder=src, output_folder=out, weights=weights)
    settings = validated(PreprocessSettings, locals())
    log.info("preprocess: %s -> %s %s", src, out, settings.model_dump_json())
    check_models(settings)
    run = Run(runs_root(out))
    plan = plan_preprocess(src, out, settings, retry_failed, work=run.uri)
    labels = plan.sources
    cut = f" ({len(plan.todo)} rows: long sources in spans)" if len(plan.todo) > len(labels) else ""
    typer.echo(f"{len(labels)} source(s) to process{cut}, {len(plan.done)} already done", err=True)
    results = []
    if plan.todo:  # a run with nothing to do writes nothing, not even its summary
        connect(address, num_cpus)
        tally = Tally("preprocess", len(labels), "sources", "frames")
        with _by_source(item_progress(tally, None, labels), run) as progress:
            results = run_preprocess(plan, settings, run, partial(_report, progress))
    this_run = summarise(results)
    everything = summarise(plan.done + results)
    body = {"run_id": run.run_id, "errors_table": run.errors.uri, "this_run": this_run, "dataset": everything}
    if plan.todo:
        run.write_summary(body)
    typer.echo(json.dumps(body, indent=2))
    if results and this_run["failed"] == len(results):
        raise typer.Exit(1)  # nothing usable came out of this run


def index(
    out: Annotated[str, typer.Argument(metavar="DATASET_URI", help="A dataset written by `musedub preprocess`.")],
    ratio: Annotated[float, typer.Option(help="k as a fraction of the clip (code 0.51, paper 0.40).")] = 0.51,
    exclusion: Annotated[int, typer.Option(help="Never a reference within this many frames.")] = 5,
    fallback_radius: Annotated[int, typer.Option(help="Fallback window (frames) when the sets do not meet.")] = 80,
    address: Address = None,
    num_cpus: NumCpus = None,
) -> None:
    """Compute the SIS reference candidates of every frame of every clip."""
    settings = validated(SisSettings, locals())
    todo, current = plan_index(out, settings)
    sources = len({row["source_id"] for row in todo})
    typer.echo(f"{sources} source(s) to index, {current} current", err=True)
    run = Run(runs_root(out))
    results = []
    if todo:
        connect(address, num_cpus)
        with _by_source(item_progress(Tally("index", sources, "sources", "frames")), run) as progress:
            for result in run_index(todo, settings, run):
                results.append(result)
                progress.done(result["source_id"], result["frames"], f"{result['frames']} frames")
    errors = run.errors.read()
    failed = {source_of(e.item_id) for e in errors}
    body = {
        "run_id": run.run_id,
        "indexed": len(results),
        "current": current,
        "failed": len(failed),
        "frames": sum(r["frames"] for r in results),
        "fallback_frames": sum(r["fallback"] for r in results),
        "errors": {e.item_id: e.message for e in errors},
    }
    if todo:
        run.write_summary(body)
    typer.echo(json.dumps(body))
    if errors:
        typer.echo(f"{len(failed)} source(s) failed: errors table {run.errors.uri}", err=True)
