"""The batch's plan task, in a module of its own: Ray imports a task's module on every worker that runs
it, and a plan worker (a quarter of a CPU each) needs media probing and checksums, not the dubbing
stages' torch, model and face-tracking code (5 s of CPU and 600 MB each when it imported them)."""

from __future__ import annotations

from collections.abc import Sequence
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


JOBS_PER_TASK = 32  # at most: enough to spread Ray's cost per task, few enough to keep every CPU busy

PlanCall = tuple[JobSpec, DubOptions, str, str, ErrorsTable]


def plan_group(calls: list[PlanCall]) -> list[tuple[JobPlan, bool] | None]:
    """Several jobs planned in turn in one task: Ray's own cost per task (scheduling, a result
    stored and fetched) came to about a third of a short clip's plan, and jobs that name the same
    video, grouped together, find its probe in the worker's memory (`plan.probed_video`)."""
    return [plan_remote(*call) for call in calls]


def plan_groups(calls: Sequence[PlanCall], slots: int) -> list[list[int]]:
    """Calls (by index) in groups that name the same videos where they can, at least four groups
    per plan slot so the slots stay busy to the end."""
    order = sorted(range(len(calls)), key=lambda i: calls[i][0].video)
    size = max(1, min(JOBS_PER_TASK, len(calls) // (4 * max(slots, 1))))
    return [order[start : start + size] for start in range(0, len(order), size)]
