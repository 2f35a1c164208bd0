"""`musedub catalog plan|run CATALOG`: dub what a streaming catalogue is missing or has stale.

Meant for a nightly schedule (a KubeRay RayJob under a CronJob, or cron on a VM head node): a
run takes the catalogue's lease, re-plans under it, runs the batch, records what it did and lets
the lease go. A run that finds the lease held does nothing and says so; a failed night leaves
its unfinished jobs to the next, which finds them still to do.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated

import typer

from musedub.infra.lease import Lease
from musedub.infra.storage import write_bytes_atomic
from musedub.infra.webhook import Webhook
from musedub.jobs.batch_cmd import run_batch
from musedub.jobs.job_flags import (
    DEFAULTS,
    Address,
    BatchSegments,
    BatchWait,
    Compile,
    CpuPool,
    CpuThreads,
    Crf,
    Device,
    Dtype,
    GpuPool,
    Landmarks,
    Length,
    Mask,
    NumCpus,
    Pools,
    Preset,
    Preview,
    SegmentSeconds,
    WebhookAllowPrivate,
    WebhookUrl,
    Weights,
    build_options,
    check_dtype,
    check_uris,
    validated,
)
from musedub.models.weights.store import DEFAULT_WEIGHTS
from musedub.pipeline.catalog.catalogue import CatalogEntry, read_catalog
from musedub.pipeline.catalog.plan import CatalogPlan, plan_catalog
from musedub.pipeline.catalog.run import RunRecord, lease_prefix, plan_uri
from musedub.pipeline.dub.batch import BatchSettings
from musedub.pipeline.dub.manifest import problems_error
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.outcome import JobOutcome

log = logging.getLogger(__name__)
app = typer.Typer(no_args_is_help=True, help="Dub what a catalogue is missing or has stale, on a schedule.")

Catalog = Annotated[str, typer.Argument(help="CSV or Parquet catalogue (path or URI).")]
Prefix = Annotated[str, typer.Option(help="Where outputs go: <prefix>/<title_id>/<language>.mp4.")]
LeaseSeconds = Annotated[float, typer.Option(help="Lease expiry; renewed every third of it while running.")]


def _entries(catalog: str) -> tuple[list[CatalogEntry], list[str]]:
    """The good rows' entries; each bad row is printed (one line, with where it is) and left out.
    A catalogue with no good row at all is refused."""
    entries, problems = read_catalog(catalog)
    if not entries:
        raise problems_error(f"catalogue {catalog}", problems, "nothing was planned")
    for problem in problems:
        typer.echo(f"catalogue {catalog} {problem} (row left out)", err=True)
    return entries, problems


def _plan(entries: list[CatalogEntry], output_prefix: str, options: DubOptions, weights: str) -> CatalogPlan:
    plan = plan_catalog(entries, output_prefix, options, weights)
    for entry in plan.entries:
        if entry.reason:
            typer.echo(f"[{entry.entry.job_id}] {entry.status}: {entry.reason}", err=True)
    typer.echo(", ".join(f"{k} {v}" for k, v in plan.summary().items()))
    return plan


@app.command()
def plan(
    catalog: Catalog,
    output_prefix: Prefix,
    manifest: Annotated[str | None, typer.Option(help="Where to write the jobs (default: under the prefix).")] = None,
    weights: Weights = DEFAULT_WEIGHTS,
    landmarks: Landmarks = DEFAULTS.landmarks,
    mask: Mask = DEFAULTS.mask,
    length_policy: Length = DEFAULTS.length_policy,
    crf: Crf = DEFAULTS.crf,
    preset: Preset = DEFAULTS.preset,
    segment_seconds: SegmentSeconds = DEFAULTS.segment_seconds,
    cpu_threads: CpuThreads = DEFAULTS.cpu_threads,
) -> None:
    """Write the manifest of jobs still to do (new or stale) and print a summary."""
    options = build_options(locals())
    check_uris(catalogue=catalog, output_prefix=output_prefix, weights=weights, manifest=manifest)
    entries, problems = _entries(catalog)
    result = _plan(entries, output_prefix, options, weights)
    if not result.todo:
        typer.echo("nothing to do")
    else:
        target = manifest or plan_uri(output_prefix, time.time())
        write_bytes_atomic(target, result.manifest_lines().encode(), "manifest")
        typer.echo(f"wrote {len(result.todo)} job(s) to {target}")
    if problems:
        raise typer.Exit(1)


@app.command()
def run(
    catalog: Catalog,
    output_prefix: Prefix,
    weights: Weights = DEFAULT_WEIGHTS,
    landmarks: Landmarks = DEFAULTS.landmarks,
    mask: Mask = DEFAULTS.mask,
    length_policy: Length = DEFAULTS.length_policy,
    crf: Crf = DEFAULTS.crf,
    preset: Preset = DEFAULTS.preset,
    segment_seconds: SegmentSeconds = DEFAULTS.segment_seconds,
    cpu_threads: CpuThreads = DEFAULTS.cpu_threads,
    address: Address = None,
    num_cpus: NumCpus = None,
    cpu_pool: CpuPool = 0,
    gpu_pool: GpuPool = 0,
    pools: Pools = "auto",
    batch_segments: BatchSegments = 4,
    batch_wait: BatchWait = 0.5,
    device: Device = "auto",
    dtype: Dtype = "auto",
    compile: Compile = False,
    lease_seconds: LeaseSeconds = 600.0,
    webhook: WebhookUrl = None,
    webhook_allow_private: WebhookAllowPrivate = False,
    preview: Preview = True,
) -> None:
    """Plan under the catalogue's lease, dub what is to do, write a dated run record."""
    check_dtype(dtype)
    options = build_options(locals())
    check_uris(catalogue=catalog, output_prefix=output_prefix, weights=weights)
    settings = validated(BatchSettings, locals())  # the flags named as its fields (outputs under the prefix)
    entries, problems = _entries(catalog)  # an unreadable catalogue fails here, before the lease or a record
    hook = Webhook.from_env(webhook, webhook_allow_private) if webhook else None
    record = RunRecord(uuid.uuid4().hex[:12], catalog, output_prefix, time.time())
    lease = Lease(lease_prefix(output_prefix), record.run_id, lease_seconds)
    holder = lease.acquire()
    if holder is not None:
        until = time.strftime("%H:%M:%S UTC", time.gmtime(holder.expires))
        record.finish("skipped", note=f"run {holder.holder} holds the lease until {until}")
        typer.echo(f"another run ({holder.holder}) holds the lease until {until}: nothing done; {record.write()}")
        return
    outcomes: list[JobOutcome] = []
    try:
        result = _plan(entries, output_prefix, options, weights)  # under the lease: outputs as they are now
        record.plan = {**result.summary(), "bad rows": len(problems)}
        if result.todo:
            run = record.batch_run()
            runs = settings.model_copy(update={"runs": run.root})
            outcomes = run_batch(result.jobs(), runs, address, num_cpus, False, run, hook).outcomes
        lease.check()
        failed = any(o.status == "failed" for o in outcomes) or bool(problems)
        record.finish("failed" if failed else "done", outcomes, note="; ".join(problems))
    except BaseException as exc:  # the record still lists the jobs that ran (e.g. when the lease was lost)
        record.finish("failed", outcomes, note=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        lease.release()
        typer.echo(f"run record {record.write()}")
    if record.status == "failed":
        raise typer.Exit(1)
