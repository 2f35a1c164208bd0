"""The public Python API (`from musedub import dub, batch, DubOptions`); the CLI calls these too.

Bad input raises `musedub.infra.errors.MusedubError` with one line naming the input and the fix.
In a batch, a bad job never raises: it fails alone and its error is in `BatchResult.errors` and
in the run's errors table.
"""

from __future__ import annotations

from musedub.infra.ray_cluster import connect
from musedub.models.weights.store import DEFAULT_WEIGHTS
from musedub.pipeline.core.run import Run
from musedub.pipeline.dub.batch import BatchRunner, BatchSettings, ProgressSink, SilentProgress
from musedub.pipeline.dub.local_runner import LocalRunner, PhaseProgress
from musedub.pipeline.dub.manifest import JobSpec, Manifest, problems_error, read_manifest
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.outcome import BatchResult
from musedub.pipeline.dub.report import DubReport

__all__ = ["BatchResult", "DubOptions", "DubReport", "batch", "dub"]


def dub(
    video: str,
    audio: str,
    output: str,
    options: DubOptions | None = None,
    weights: str = DEFAULT_WEIGHTS,
    device: str = "auto",
    dtype: str = "auto",
    compile: bool = False,
    progress: PhaseProgress | None = None,
) -> DubReport:
    """Dub one video (or still image) with one audio in this process; writes `output` and its report.
    `progress(phase, done, total, frames/s)` hears of each tracked chunk and each written segment."""
    runner = LocalRunner(options or DubOptions(), weights, device, dtype, compile)
    return runner.dub(video, audio, output, progress)


def batch(
    manifest: str | list[JobSpec] | Manifest,
    options: DubOptions | None = None,
    weights: str = DEFAULT_WEIGHTS,
    output_prefix: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    settings: BatchSettings | None = None,
    keep_work: bool = False,
    progress: ProgressSink | None = None,
    run: Run | None = None,
) -> BatchResult:
    """Dub every job of a manifest (a path/URI, or parsed jobs) on a Ray cluster: `address`, or
    RAY_ADDRESS, else an embedded local one. `settings` overrides `options` and `weights`.

    A bad manifest row, or a job whose output is outside `output_prefix`, fails alone; a manifest
    with no good row at all raises ManifestError listing every problem."""
    if isinstance(manifest, str):
        manifest = read_manifest(manifest)
    if isinstance(manifest, Manifest):
        if not manifest.jobs:
            raise problems_error(
                f"manifest {manifest.uri}",
                [f"{row.where}: {p}" for row in manifest.rejected for p in row.problems],
                "no job can run",
            )
        jobs, rejected, uri = manifest.jobs, manifest.rejected, manifest.uri
    else:
        jobs, rejected, uri = manifest, [], ""
    settings = settings or BatchSettings(weights=weights, options=options or DubOptions())
    if output_prefix:
        settings = settings.model_copy(update={"output_prefix": output_prefix})
    cluster = connect(address, num_cpus)
    return BatchRunner(settings, cluster, keep_work).run(jobs, progress or SilentProgress(), run, rejected, uri)
