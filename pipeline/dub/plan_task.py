"""The batch's plan task, in a module of its own: Ray imports a task's module on every worker that runs
it, and a plan worker (a quarter of a CPU each) needs media probing and checksums, not the dubbing
stages' torch, model and face-tracking code (5 s of CPU and 600 MB each when it imported them)."""

from __future__ import annotations

from dataclasses import replace

from musedub.infra.storage import join_uri
from musedub.pipeline.core.errors import ErrorsTable
from musedub.pipeline.dub.manifest import JobSpec
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import JobPlan, plan_job
from musedub.pipeline.dub.report import committed_report
from musedub.pipeline.media.index import save_index, video_info


def plan_remote(
    spec: JobSpec, options: DubOptions, weights: str, work: str, errors: ErrorsTable
) -> tuple[JobPlan, bool] | None:
    """A job's plan and whether its committed output is already current (checked here, in parallel,
    not again by the driver: on object storage that was a request per job in a row), or None with
    its error recorded: nothing about one job's inputs sinks the batch. Its probe is saved to the
    work prefix, so no stage on any node demuxes the video again."""
    try:
        plan = plan_job(spec.job_id, spec.video, spec.audio, spec.output, options, weights)
        if committed_report(plan) is not None:
            return plan, True  # nothing will run, so no index (and no work prefix) is made
        index = join_uri(work, f"index-{plan.key}.npz")
        save_index(video_info(plan.base_row()), index)
        return replace(plan, media_index=index), False
    except Exception as exc:
        errors.record(exc, spec.job_id, "plan")
        return None
