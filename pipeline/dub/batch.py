"""A manifest of jobs on Ray: plan every job, then one stream through pools that live for the batch:
a job's faces tracked chunk by chunk, its faces chosen, its segments through crop, prompts,
generate and blend+encode as soon as they are (other jobs may still be tracking), then each job
stitched and committed.

Every finished piece is kept under the job's work prefix with a name from the job key (inputs'
checksums + options + weights), so a rerun after an interruption redoes only what is missing,
and a job whose output and report already match its key is left alone. Whatever fails, from
planning on, fails only its own job and becomes a record in the run's errors table.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from musedub.infra.errors import InputError, MusedubError
from musedub.infra.storage import (
    is_under,
    join_uri,
    list_files,
    read_bytes,
    write_bytes_atomic,
)
from musedub.models.weights.store import PRECISIONS, ModelStore
from musedub.pipeline.core.errors import ErrorRecord, ErrorsTable
from musedub.pipeline.core.ray_adapter import Tasks, declare, fuse, run_tasks
from musedub.pipeline.core.run import RUNS_FOLDER, Run, parent_uri, runs_beside
from musedub.pipeline.core.stage import ITEM_ID, Row
from musedub.pipeline.core.stream_pool import Layout, StreamPool
from musedub.pipeline.dub.blend_stage import BlendEncodeStage, chosen_mask
from musedub.pipeline.dub.face_stages import CropStage, TrackFacesStage, require_a_face
from musedub.pipeline.dub.finish_task import JobState, finish_remote
from musedub.pipeline.dub.job_faces import choose_faces, faces_summary
from musedub.pipeline.dub.manifest import JobSpec, ManifestError, RejectedRow, outside_prefix
from musedub.pipeline.dub.model_stages import AudioPromptStage, GenerateStage
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.outcome import BatchResult, JobOutcome
from musedub.pipeline.dub.plan import JobPlan
from musedub.pipeline.dub.plan_task import PlanCall, plan_group, plan_groups
from musedub.pipeline.dub.preview import write_batch_index
from musedub.pipeline.dub.style_references import ReferenceMaker
from musedub.pipeline.face.choice import FaceChoice
from musedub.pipeline.face.crop_geometry import FaceStatus

WORK_FOLDER = ".musedub-work"
CHUNK_KEYS = ("faces", "cuts", "level_db", "sync")  # what a tracked chunk keeps in the work prefix
PLAN_CPUS = 0.25  # a plan task's share: planning waits on storage as much as it computes

log = logging.getLogger(__name__)

Complete = Callable[[JobState], None]  # called once all of a job's segments are done
ONE_POOL_ROUTES = {"track": ("track",), "segment": ("segment",)}
SPLIT_ROUTES = {"track": ("track",), "segment": ("prepare", "generate", "blend")}


def default_work(output: str, job_id: str) -> str:
    """The job's work prefix: beside its output, so it lives on the same store and permissions."""
    return join_uri(parent_uri(output), WORK_FOLDER, job_id)


class ProgressSink(Protocol):
    def planned(self, total_frames: int) -> None: ...

    def tracked(self, frames: int, total: int) -> None:
        """Source frames whose faces are tracked so far, of all the batch's."""

    def segment_done(self, state: JobState, frames: int) -> None: ...

    def job_done(self, outcome: JobOutcome) -> None: ...


class SilentProgress:
    def planned(self, total_frames: int) -> None:
        """Nothing to show."""

    def tracked(self, frames: int, total: int) -> None:
        """Nothing to show."""

    def segment_done(self, state: JobState, frames: int) -> None:
        """Nothing to show."""

    def job_done(self, outcome: JobOutcome) -> None:
        """Nothing to show."""


class BatchSettings(BaseModel):
    """The options of `musedub batch` beyond each job's own (`musedub schema batch`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: str = Field(description="weights folder or URI; on a cluster every node must see it")
    options: DubOptions = Field(default_factory=DubOptions, description="batch-wide job options; rows override")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="where the generator runs")
    dtype: Literal[PRECISIONS] = Field("auto", description="generator precision; auto: bf16 on GPU, fp32 on CPU")  # type: ignore[valid-type]
    compile: bool = Field(False, description="torch.compile the generator (GPU: ~80 s per worker, then ~1.9x)")
    work: str | None = Field(None, description="root for work prefixes; default beside each output")
    cpu_pool: int = Field(0, ge=0, description="actors of the CPU pool; 0 = from declared resources and the cluster")
    gpu_pool: int = Field(0, ge=0, description="generator actors; 0 = one per GPU (or as many as fit on CPUs)")
    pools: Literal["auto", "split", "fused"] = Field(
        "auto",
        description="split: a CPU pool (tracking, crop, prompts, blend) around a generator pool; "
        "fused: one pool does all; auto: split with a GPU, fused without",
    )
    batch_segments: int = Field(
        4, ge=1, le=64, description="split pools: segments one generator actor fills its batches from at once"
    )
    batch_wait: float = Field(
        0.5, ge=0, le=60, description="s a part-filled generator batch waits for frames of other segments"
    )
    runs: str | None = Field(None, description="where run folders go; default `.musedub-runs` beside the first output")
    output_prefix: str | None = Field(None, description="a job whose output is not under this prefix fails alone")
    preview: bool = Field(False, description="OUTPUT.preview.html per job and RUN/index.html (the CLI's default: on)")

    def runs_root(self, jobs: list[JobSpec]) -> str:
        if self.runs:
            return self.runs
        return join_uri(self.work, RUNS_FOLDER) if self.work else runs_beside(jobs[0].output)

    def generate_device(self, cluster: dict[str, float]) -> str:
        """Where the generator runs: `cuda` asks for GPU actors even before an autoscaler has added a
        GPU node; `auto` uses the GPUs present."""
        use_gpu = self.device == "cuda" or (cluster.get("GPU", 0) > 0 and self.device != "cpu")
        return "cuda" if use_gpu else "cpu"

    def fixed(self, pool: int) -> dict[str, Any]:
        """A user's pool size wins over the declared range."""
        return {"min_actors": pool, "max_actors": pool} if pool else {}

    def layout(self, cluster: dict[str, float]) -> Layout:
        """The batch's pools. Around a GPU generator, a CPU pool tracks faces and prepares (crop,
        prompts) and finishes (blend+encode) segments for it, and each generator actor batches
        across `batch_segments` segments. Where everything runs on CPUs, one pool tracks and takes
        each segment through every stage in one process: separate pools only oversubscribe the
        cores and pass crops through the object store."""
        w, o, cpu, device = self.weights, self.options, self.fixed(self.cpu_pool), self.generate_device(cluster)
        fused = self.pools == "fused" or (self.pools == "auto" and device == "cpu")
        generate = partial(
            GenerateStage,
            w,
            o,
            device,
            self.dtype,
            self.compile,
            segments=1 if fused else self.batch_segments,
            batch_wait=self.batch_wait,
        )
        track = declare(partial(TrackFacesStage, w, o), **cpu)
        prepare = [declare(partial(CropStage, o), **cpu), declare(partial(AudioPromptStage, w, "cpu"), **cpu)]
        gpu = declare(generate, **self.fixed(self.gpu_pool))
        blend = declare(partial(BlendEncodeStage, o, w, "cpu"), **cpu)
        if fused:
            return Layout({"cpu": {"track": track, "segment": fuse([*prepare, gpu, blend])}}, ONE_POOL_ROUTES)
        chains = {"track": track, "prepare": fuse(prepare), "blend": blend}
        return Layout({"cpu": chains, "gpu": {"generate": gpu}}, SPLIT_ROUTES)


def _reference_remote(plan: JobPlan, choice: FaceChoice, uri: str, errors: ErrorsTable) -> dict[str, Any] | None:
    """A style job's references written to `uri` -> what the report says of them (with `file`),
    or None with its error recorded."""
    try:
        return ReferenceMaker(plan.weights, plan.options).write(plan, choice, uri)
    except Exception as exc:
        errors.record(exc, plan.job_id, "StyleReference")
        return None


class BatchRunner:
    """Runs one batch; `cluster` is the connected cluster's resources (pools are sized from them)."""

    def __init__(self, settings: BatchSettings, cluster: dict[str, float], keep_work: bool = False) -> None:
        self.settings = settings
        self.cluster = cluster
        self.keep_work = keep_work
        self.owner: dict[str, str] = {}  # item id -> job id, to map error records back to jobs
        self._frames_tracked = self._frames_total = 0  # source frames of the batch's jobs, for progress

    def _item(self, row: dict[str, Any], job_id: str, item: str) -> dict[str, Any]:
        item_id = f"{job_id}:{item}"
        self.owner[item_id] = job_id
        return {**row, ITEM_ID: item_id}

    # -- plan ---------------------------------------------------------------------------------
    def _job_options(self, spec: JobSpec) -> DubOptions:
        return self.settings.options.model_copy(update=spec.overrides())

    def plan(self, jobs: list[JobSpec], errors: ErrorsTable) -> tuple[list[JobState], list[JobOutcome]]:
        prefix = self.settings.output_prefix
        outside = {spec.job_id for spec in jobs if prefix and not is_under(spec.output, prefix)}
        for spec in jobs:
            self.owner[spec.job_id] = spec.job_id
            if spec.job_id in outside:
                errors.record(InputError(f"job {spec.job_id}: {outside_prefix(spec, prefix)}"), spec.job_id, "plan")
        jobs = [spec for spec in jobs if spec.job_id not in outside]
        works = [self._work(spec) for spec in jobs]
        calls = [
            (spec, self._job_options(spec), self.settings.weights, work, errors)
            for spec, work in zip(jobs, works, strict=True)
        ]
        states, outcomes = [], []
        for spec, work, result in zip(jobs, works, self._planned(calls), strict=True):
            if result is None:
                continue  # its error record names why
            plan, current = result
            if current:
                outcomes.append(JobOutcome(spec.job_id, "up to date", spec.output, frames=plan.total))
                continue
            states.append(JobState(plan, work))
        return states, outcomes

    def _planned(self, calls: list[PlanCall]) -> list[tuple[JobPlan, bool] | None]:
        """Each call's plan task result, in call order, from tasks of several jobs each."""
        groups = plan_groups(calls, int(self.cluster.get("CPU", 1) / PLAN_CPUS))
        results: list[tuple[JobPlan, bool] | None] = [None] * len(calls)
        tasks = [([calls[i] for i in group],) for group in groups]
        for group, planned in zip(groups, run_tasks(plan_group, tasks, cpus=PLAN_CPUS), strict=True):
            for i, result in zip(group, planned, strict=True):
                results[i] = result
        return results

    def _work(self, spec: JobSpec) -> str:
        return (
            join_uri(self.settings.work, spec.job_id) if self.settings.work else default_work(spec.output, spec.job_id)
        )

    # -- track --------------------------------------------------------------------------------
    def _chunk_rows(self, states: list[JobState], progress: ProgressSink) -> tuple[list[Row], dict[str, list[Row]]]:
        """A row for every chunk not already kept in the work prefix, and each job's kept chunks."""
        rows = []
        chunks: dict[str, list[Row]] = {s.plan.key: [] for s in states}
        for state in states:
            present = set(list_files(state.work))
            for start, stop in state.plan.track_chunks():
                name = state.track_name(start, stop)
                if name in present:
                    chunks[state.plan.key].append(_read_chunk(join_uri(state.work, name), start))
                else:
                    row = state.plan.chunk_row(start, stop)
                    rows.append(self._item(row, state.plan.job_id, f"track-{start}-{stop}"))
        self._frames_total = sum(s.plan.video_frames for s in states)
        self._frames_tracked = self._frames_total - sum(r["chunk_stop"] - r["chunk_start"] for r in rows)
        progress.tracked(self._frames_tracked, self._frames_total)  # some may be kept from an earlier run
        return rows, chunks

    def _keep_chunk(self, state: JobState, out: Row, chunks: list[Row], progress: ProgressSink) -> None:
        """A tracked chunk, kept in the work prefix for a rerun; `progress` hears of each as it comes
        back, so the first phase of a film's batch moves from its start."""
        start, stop = out["chunk_start"], out["chunk_stop"]
        kept = {k: np.asarray(out[k]) for k in CHUNK_KEYS}
        chunks.append({"chunk_start": start, **kept})
        state.seconds.update(json.loads(out["seconds"]))
        write_bytes_atomic(join_uri(state.work, state.track_name(start, stop)), _npz_bytes(kept), "track chunk")
        self._frames_tracked += stop - start
        progress.tracked(self._frames_tracked, self._frames_total)

    def _choose(self, state: JobState, chunks: list[Row], errors: ErrorsTable) -> bool:
        """Once all of a job's chunks are tracked: the faces it dubs and the report's account of them.
        False for a job with a failed chunk (its error record says why) or no face in any frame."""
        if len(chunks) != len(state.plan.track_chunks()):
            return False
        try:
            state.choice = choose_faces(state.plan, chunks)
            require_a_face(state.plan.video, len(state.choice.tracks))
            state.faces = faces_summary(state.plan, state.choice)
        except MusedubError as exc:
            errors.record(exc, state.plan.job_id, "Track")
            return False
        return True

    # -- style references ---------------------------------------------------------------------
    def references(self, states: list[JobState], errors: ErrorsTable) -> list[JobState]:
        """Each style job's reference file, made once per run (a task per job, a few seconds: not
        worth keeping across runs; in the room the pools leave) -> the jobs that can run (a failed
        one has its error recorded)."""
        calls = []
        for state in states:
            if state.plan.options.generator != "style":
                continue
            assert state.choice is not None
            calls.append((state, (state.plan, state.choice, state.reference_uri(), errors)))
        for (state, _), made in zip(calls, run_tasks(_reference_remote, [c for _, c in calls]), strict=True):
            if made is not None:
                state.style_reference = made.pop("file")
                state.faces["style_reference"] = made
        return [s for s in states if s.plan.options.generator != "style" or s.style_reference]

    # -- segments -----------------------------------------------------------------------------
    def _segment_rows(self, state: JobState, progress: ProgressSink, complete: Complete) -> list[Row]:
        """A job's unfinished segments as rows; those an earlier run finished count as done (and the
        job completes at once when none is left)."""
        assert state.choice is not None
        rows = []
        present = set(list_files(state.work))
        for segment in state.plan.segments():
            if {f"{segment.segment_id}.mp4", f"{segment.segment_id}.json"} <= present:
                record = json.loads(read_bytes(join_uri(state.work, f"{segment.segment_id}.json"), "segment record"))
                state.statuses.update(record["statuses"])
                state.done.add(segment.segment_id)
                state.reused += 1
                state.reused_frames += segment.frames
                progress.segment_done(state, segment.frames)
                continue
            row = state.plan.segment_row(segment, state.choice, state.style_reference)
            row = {**row, "segment_file": state.segment_uri(segment.segment_id)}
            rows.append(self._item(row, state.plan.job_id, segment.segment_id))
        if state.finished:
            complete(state)
        return rows

    def _segment_done(self, state: JobState, out: Row, progress: ProgressSink, complete: Complete) -> None:
        """A finished segment's record kept beside its file; `complete(state)` once all of the job's
        are done, so jobs are committed while the rest of the batch still runs."""
        statuses = Counter(FaceStatus(int(v)).name.lower() for v in out["status"])
        seconds = json.loads(out["seconds"])
        record = {"statuses": dict(statuses), "seconds": seconds, "frames": int(out["frames_written"])}
        write_bytes_atomic(
            join_uri(state.work, f"{out['segment_id']}.json"), json.dumps(record).encode(), "segment record"
        )
        state.statuses.update(statuses)
        state.seconds.update(seconds)
        state.done.add(str(out["segment_id"]))
        progress.segment_done(state, int(out["stop"]) - int(out["start"]))
        if state.finished:
            complete(state)

    # -- the batch's work -----------------------------------------------------------------------
    def streamed(
        self, states: list[JobState], errors: ErrorsTable, progress: ProgressSink, complete: Complete
    ) -> list[JobState]:
        """Track every chunk and dub every segment not kept from an earlier run; a job's segments
        start as soon as its own faces are chosen, before other jobs' tracking -> the jobs whose
        segments ran."""
        rows, chunks = self._chunk_rows(states, progress)
        by_key = {s.plan.key: s for s in states}
        items = len(rows) + sum(len(s.plan.segments()) for s in states)
        live: list[JobState] = []

        def chosen(state: JobState) -> list[Row]:
            """The job's segment rows once its faces are chosen (none before, or if it failed)."""
            if not self._choose(state, chunks[state.plan.key], errors) or not self.references([state], errors):
                return []
            live.append(state)
            return self._segment_rows(state, progress, complete)

        ready = [row for s in states if len(chunks[s.plan.key]) == len(s.plan.track_chunks()) for row in chosen(s)]
        if not rows and not ready:
            return live  # everything was tracked and dubbed by an earlier run: no pool to start
        layout = self.settings.layout(self.cluster)
        pool = StreamPool(layout, errors, self.settings.options.cpu_threads, items, first=("segment",))
        try:
            for row in ready:
                pool.submit("segment", row)
            for row in rows:
                pool.submit("track", row)
            for kind, out in pool.results():
                state = by_key[out["job_key"]]
                if kind == "segment":
                    self._segment_done(state, out, progress, complete)
                    continue
                self._keep_chunk(state, out, chunks[state.plan.key], progress)
                for row in chosen(state):
                    pool.submit("segment", row)
        finally:
            pool.close()
        return live

    def _first_errors(self, errors: ErrorsTable) -> dict[str, ErrorRecord]:
        """Each failed job's first error record."""
        first: dict[str, ErrorRecord] = {}
        for record in errors.read():
            first.setdefault(self.owner.get(record.item_id, record.item_id), record)
        return first

    # -- whole batch --------------------------------------------------------------------------
    def run(
        self,
        jobs: list[JobSpec],
        progress: ProgressSink,
        run: Run | None = None,
        rejected: list[RejectedRow] | None = None,
        manifest: str = "",
    ) -> BatchResult:
        """Dub `jobs`; each `rejected` manifest row (of `manifest`) is a job that failed before it began."""
        run = run or Run(self.settings.runs_root(jobs))
        errors = run.errors
        states, outcomes = self.plan(jobs, errors)
        for row in rejected or ():
            record = errors.record(ManifestError(row.message(manifest)), row.job_id, "manifest")
            outcomes.append(JobOutcome(row.job_id, "failed", row.output, error=record.message))
        for outcome in outcomes:  # up to date, or refused before it began: ended already
            progress.job_done(outcome)
        progress.planned(sum(state.plan.total for state in states))
        random = ModelStore(self.settings.weights).layout.is_random
        mask = chosen_mask(self.settings.options, self.settings.weights)
        finishing = Tasks(finish_remote)

        def collect(wait: bool) -> None:
            for outcome in finishing.ready(wait):
                progress.job_done(outcome)
                outcomes.append(outcome)
                _write_state(run, jobs, outcomes, "running")

        def complete(state: JobState) -> None:
            # the faces stay here: the finishing task needs only the segments' records and the summary
            finishing.start(replace(state, choice=None), random, mask, self.keep_work, errors, self.settings.preview)
            collect(wait=False)

        if states:
            _write_state(run, jobs, outcomes, "running")  # `musedub status RUN` reads it while this runs
        live = self.streamed(states, errors, progress, complete)
        failed = self._first_errors(errors)
        for state in live:
            if not state.finished:
                missing = [s for s in state.plan.segments() if s.segment_id not in state.done]
                if state.plan.job_id not in failed:
                    text = f"{len(missing)} segment(s) did not finish (first at frame {missing[0].start})"
                    failed[state.plan.job_id] = errors.record(MusedubError(text), state.plan.job_id, "segments")
        collect(wait=True)
        reported = {o.job_id for o in outcomes}
        for spec in jobs:
            if spec.job_id not in reported:
                record = failed.get(spec.job_id)
                error = record.message if record else "did not finish: see the worker logs"
                outcomes.append(JobOutcome(spec.job_id, "failed", spec.output, error=error))
                progress.job_done(outcomes[-1])
        order = {spec.job_id: i for i, spec in enumerate(jobs)}
        outcomes.sort(key=lambda o: order.get(o.job_id, len(order)))
        result = BatchResult(run.run_id, run.uri, outcomes, errors.read())
        if any(o.status != "up to date" for o in outcomes):  # a batch with nothing to do writes nothing
            _write_state(run, jobs, outcomes, "finished")
            if self.settings.preview:
                try:
                    log.info("batch previews: %s", write_batch_index(run.uri))
                except Exception as exc:  # the jobs are done either way
                    log.warning("run %s: no preview index (%s)", run.run_id, exc)
        return result


def _write_state(run: Run, jobs: list[JobSpec], outcomes: list[JobOutcome], state: str) -> None:
    """The run's summary.json: every job's outcome so far (the rest `running`) and the counts."""
    known = {o.job_id for o in outcomes}
    listed = outcomes + [JobOutcome(s.job_id, "running", s.output) for s in jobs if s.job_id not in known]
    counts = Counter(o.status for o in listed)
    summary = {"done": counts["done"], "up to date": counts["up to date"], "failed": counts["failed"]}
    if state == "running":
        summary["running"] = counts["running"]
    run.write_summary({"state": state, "counts": summary, "jobs": [asdict(o) for o in listed]})


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_chunk(uri: str, start: int) -> Row:
    """A tracked chunk kept by an earlier run of the same job key."""
    with np.load(io.BytesIO(read_bytes(uri, "track chunk")), allow_pickle=False) as kept:
        return {"chunk_start": start, **{k: kept[k] for k in CHUNK_KEYS}}
