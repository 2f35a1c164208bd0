"""`musedub eval MANIFEST`: FID, CSIM, LSE-C/D and LMD of a batch's dubbed outputs, on the Ray cluster."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any

import numpy as np
import typer

from musedub.infra.ray_cluster import connect
from musedub.infra.storage import write_bytes_atomic
from musedub.jobs.item_lines import Tally
from musedub.jobs.job_flags import DEFAULTS, Address, Landmarks, NumCpus, Weights, check_uris, validated
from musedub.jobs.progress_bars import item_progress
from musedub.models.syncnet import SYNC_FRAMES
from musedub.models.weights.store import DEFAULT_WEIGHTS
from musedub.pipeline.core.errors import ErrorRecord
from musedub.pipeline.core.ray_adapter import map_items
from musedub.pipeline.core.run import Run, runs_beside
from musedub.pipeline.core.stage import ITEM_ID
from musedub.pipeline.dub.length_policy import LengthPolicy, source_frames
from musedub.pipeline.dub.manifest import load_manifest
from musedub.pipeline.evaluation.fid import FidNetwork
from musedub.pipeline.evaluation.lmd import pooled_lmd
from musedub.pipeline.evaluation.metrics import FeatureStats, frechet_distance
from musedub.pipeline.evaluation.stage import EvalSettings, EvalStage, protocol, row_stats

log = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    """NaN (not measured) as JSON null."""
    return None if isinstance(value, float) and math.isnan(value) else value


PER_JOB = ("job_id", "output", "csim", "lse_d", "lse_c", "offset", "faces", "lmd", "lmd_frames")


@dataclass
class Pooled:
    """Results folded as they arrive: every job's FID statistics summed, its own figures kept."""

    real: FeatureStats | None = None
    fake: FeatureStats | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        real, fake = row_stats(row, "real"), row_stats(row, "fake")
        if self.real is None or self.fake is None:
            self.real, self.fake = real, fake
        else:
            self.real.merge(real)
            self.fake.merge(fake)
        self.jobs.append({k: row.get(k) for k in PER_JOB})


def summarise(pooled: Pooled, errors: list[ErrorRecord], settings: EvalSettings) -> dict[str, Any]:
    """Dataset FID over every face of every job; CSIM and LSE averaged over the jobs that have them, LMD over
    their compared frames (a job of many frames weighs more, as FID's faces do)."""
    done = pooled.jobs
    summary: dict[str, Any] = {"jobs": len(done) + len(errors), "evaluated": len(done), "protocol": protocol(settings)}
    if pooled.real is not None and pooled.fake is not None:
        summary["fid"] = frechet_distance(*pooled.real.gaussian(), *pooled.fake.gaussian())
        summary["faces"] = {"real": pooled.real.count, "fake": pooled.fake.count}
        summary["csim"] = float(np.mean([r["csim"] for r in done]))
        synced = [r for r in done if not math.isnan(r["lse_d"])]
        summary["lse_d"] = float(np.mean([r["lse_d"] for r in synced])) if synced else None
        summary["lse_c"] = float(np.mean([r["lse_c"] for r in synced])) if synced else None
        summary["lmd"], summary["lmd_frames"] = pooled_lmd((float(r["lmd"]), int(r["lmd_frames"])) for r in done)
    summary["per_job"] = [{k: _finite(r[k]) for k in PER_JOB} for r in done]
    summary["failed"] = {e.item_id: e.message for e in errors}
    return summary


def evaluate(
    manifest: Annotated[str, typer.Argument(help="The batch manifest whose outputs to score (video = source).")],
    weights: Weights = DEFAULT_WEIGHTS,
    landmarks: Landmarks = "face-alignment",
    fid: Annotated[
        FidNetwork, typer.Option(help="FID features: inception (Inception-v3 pool3, as papers) or vgg (VGG19 relu5_1).")
    ] = "inception",
    frames: Annotated[
        str,
        typer.Option(
            help=f"Frames scored per video: all, or N (a multiple of {SYNC_FRAMES}): the {SYNC_FRAMES} middle frames "
            f"of each of N/{SYNC_FRAMES} equal parts of the video (docs/METRICS.md)."
        ),
    ] = "all",
    length_policy: Annotated[
        LengthPolicy,
        typer.Option(
            help="The batch's --length-policy, for rows that set none: which source frame made each output frame "
            "(LMD compares their mouths)."
        ),
    ] = DEFAULTS.length_policy,
    report: Annotated[str | None, typer.Option(help="Also write the JSON report here (path or URI).")] = None,
    address: Address = None,
    num_cpus: NumCpus = None,
) -> None:
    """Score dubbed outputs: FID (source vs dub faces), CSIM (identity kept), LSE-D/LSE-C (lip sync), LMD (mouth
    moved from the source's)."""
    check_uris(manifest=manifest, weights=weights, report=report)
    settings = validated(EvalSettings, locals())
    jobs = load_manifest(manifest)
    log.info("eval: %d job(s) of %s, settings %s", len(jobs), manifest, settings.model_dump_json())
    rows = [
        {
            ITEM_ID: j.job_id,
            "job_id": j.job_id,
            "video": j.video,
            "output": j.output,
            "length_policy": j.length_policy or length_policy,
        }
        for j in jobs
    ]
    run = Run(runs_beside(report or jobs[0].output))
    connect(address, num_cpus)
    pooled = Pooled()
    with item_progress(Tally("eval", len(rows), "jobs", "faces"), run.errors) as progress:  # failures as they land
        for result in map_items(rows, partial(EvalStage, settings, source_frames), run.errors):
            pooled.add(result)
            faces = int(result["real_count"]) + int(result["fake_count"])
            progress.done(result["job_id"], faces, f"{faces} faces scored")
    errors = run.errors.read()
    summary = {"run_id": run.run_id, **summarise(pooled, errors, settings)}
    run.write_summary(summary)
    text = json.dumps(summary, indent=2)
    typer.echo(text)
    if report:
        write_bytes_atomic(report, text.encode(), "report")
    if not summary["evaluated"]:
        raise typer.Exit(1)
