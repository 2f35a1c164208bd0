"""`musedub batch MANIFEST`: every job of a manifest on a Ray cluster (embedded local by default)."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from musedub.infra.errors import ConfigError
from musedub.infra.storage import join_uri
from musedub.infra.webhook import Webhook
from musedub.jobs import api
from musedub.jobs.batch_lines import BatchLines
from musedub.jobs.job_flags import (
    DEFAULTS,
    Address,
    BatchSegments,
    BatchSize,
    BatchWait,
    Compile,
    CpuPool,
    CpuThreads,
    Crf,
    Depth,
    DetectEvery,
    Device,
    Dtype,
    FaceMinSize,
    Generator,
    GpuPool,
    KeepWork,
    Landmarks,
    Length,
    Mask,
    MaxFaces,
    Mbtree,
    MinFace,
    NumCpus,
    Pools,
    Preset,
    Preview,
    Runs,
    SegmentSeconds,
    Speaker,
    StillFps,
    StyleReference,
    StyleSteps,
    Version,
    WebhookAllowPrivate,
    WebhookUrl,
    Weights,
    Work,
    build_options,
    check_dtype,
    check_uris,
    validated,
)
from musedub.jobs.progress_bars import BatchBars, on_terminal
from musedub.models.weights.store import DEFAULT_WEIGHTS
from musedub.pipeline.core.run import Run
from musedub.pipeline.dub.batch import BatchSettings
from musedub.pipeline.dub.manifest import JobSpec, Manifest, load_manifest, manifest_schema, read_manifest
from musedub.pipeline.dub.outcome import BatchResult, JobOutcome

log = logging.getLogger(__name__)


def summary_table(outcomes: list[JobOutcome]) -> str:
    rows = [("job", "status", "frames", "segments run/reused", "stage s", "output / error")]
    for o in outcomes:
        done = o.status == "done"
        segments = f"{o.segments_run}/{o.segments_reused}" if done else "-"
        seconds = f"{o.seconds:.1f}" if done else "-"
        rows.append((o.job_id, o.status, str(o.frames), segments, seconds, o.error or o.output))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows)


def batch(
    manifest: Annotated[
        str | None, typer.Argument(help="YAML, JSON Lines, CSV or Parquet of jobs (path or URI).")
    ] = None,
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON Schema of a manifest row and exit.")] = False,
    weights: Weights = DEFAULT_WEIGHTS,
    address: Address = None,
    num_cpus: NumCpus = None,
    output_prefix: Annotated[
        str | None, typer.Option(help="A job whose output is outside this prefix fails (alone).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse the whole manifest if any row is bad (default: that job fails).")
    ] = False,
    work: Work = None,
    runs: Runs = None,
    keep_work: KeepWork = False,
    landmarks: Landmarks = DEFAULTS.landmarks,
    mask: Mask = DEFAULTS.mask,
    length_policy: Length = DEFAULTS.length_policy,
    version: Version = DEFAULTS.version,
    depth: Depth = DEFAULTS.depth,
    crf: Crf = DEFAULTS.crf,
    preset: Preset = DEFAULTS.preset,
    mbtree: Mbtree = DEFAULTS.mbtree,
    detect_every: DetectEvery = DEFAULTS.detect_every,
    min_face: MinFace = DEFAULTS.min_face,
    speaker: Speaker = DEFAULTS.speaker,
    generator: Generator = DEFAULTS.generator,
    style_reference: StyleReference = DEFAULTS.style_reference,
    style_steps: StyleSteps = DEFAULTS.style_steps,
    face_min_size: FaceMinSize = DEFAULTS.face_min_size,
    max_faces: MaxFaces = DEFAULTS.max_faces,
    still_fps: StillFps = DEFAULTS.still_fps,
    segment_seconds: SegmentSeconds = DEFAULTS.segment_seconds,
    batch_size: BatchSize = DEFAULTS.batch_size,
    cpu_threads: CpuThreads = DEFAULTS.cpu_threads,
    cpu_pool: CpuPool = 0,
    gpu_pool: GpuPool = 0,
    pools: Pools = "auto",
    batch_segments: BatchSegments = 4,
    batch_wait: BatchWait = 0.5,
    device: Device = "auto",
    dtype: Dtype = "auto",
    compile: Compile = False,
    webhook: WebhookUrl = None,
    webhook_allow_private: WebhookAllowPrivate = False,
    preview: Preview = True,
) -> None:
    """Dub every job of MANIFEST; exits 1 and lists the failures if any job failed."""
    if schema:
        typer.echo(json.dumps(manifest_schema(), indent=2))
        return
    if manifest is None:
        raise ConfigError("give a MANIFEST (or --schema to see what a row holds)")
    check_uris(
        manifest=manifest,
        weights=weights,
        output_prefix=output_prefix,
        work=work,
        runs=runs,
        style_reference=style_reference,
    )
    check_dtype(dtype)
    options = build_options(locals())  # batch-wide defaults; manifest rows override per job
    jobs = load_manifest(manifest, output_prefix) if strict else read_manifest(manifest)
    settings = validated(BatchSettings, locals())  # the flags named as its fields
    hook = Webhook.from_env(webhook, webhook_allow_private) if webhook else None
    result = run_batch(jobs, settings, address, num_cpus, keep_work, hook=hook)
    if result.failed:
        raise typer.Exit(1)


def run_batch(
    jobs: list[JobSpec] | Manifest,
    settings: BatchSettings,
    address: str | None,
    num_cpus: int | None,
    keep_work: bool,
    run: Run | None = None,
    hook: Webhook | None = None,
) -> BatchResult:
    """Join or start the cluster, run the jobs with progress lines, print the summary table; with a
    `hook`, POST each job's end and the batch's."""
    planned = jobs.jobs if isinstance(jobs, Manifest) else jobs
    count = len(planned) + len(jobs.rejected) if isinstance(jobs, Manifest) else len(jobs)
    log.info("batch: %d jobs; settings %s", count, settings)
    if run is None and planned:
        run = Run(settings.runs_root(planned))
    run_id = run.run_id if run else ""
    progress = BatchBars(hook, run_id) if on_terminal() else BatchLines(hook, run_id)
    try:
        result = api.batch(
            jobs, settings=settings, address=address, num_cpus=num_cpus, keep_work=keep_work, progress=progress, run=run
        )
        if hook is not None:
            body = {"run_id": result.run_id, "run": result.run_uri, "counts": result.counts()}
            hook.send("batch", {**body, "failed": [o.job_id for o in result.failed]})
    finally:
        progress.close()
        if hook is not None:
            hook.close()
    typer.echo(summary_table(result.outcomes))
    counts = result.counts()
    typer.echo(
        f"{counts['done']} dubbed, {counts['up to date']} up to date, {counts['failed']} failed; "
        f"run {result.run_id}: errors table {result.run_uri}/errors"
    )
    if settings.preview and any(o.status != "up to date" for o in result.outcomes):
        typer.echo(f"previews: {join_uri(result.run_uri, 'index.html')}")
    return result
