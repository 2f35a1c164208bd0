"""A manifest of jobs on Ray: plan every job, track faces chunk by chunk, run segments through the
crop / prompt / generate / blend pools, then stitch and commit each job.

Every finished piece is kept under the job's work prefix with a name from the job key (inputs'
checksums + options + weights), so a rerun after an interruption redoes only what is missing,
and a job whose output and report already match its key is left alone.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Protocol

import numpy as np
import ray
from musedub.infra.errors import MusedubError
from musedub.infra.storage import (
    commit_file,
    fetch_file,
    join_uri,
    list_files,
    read_bytes,
    remove_tree,
    write_bytes_atomic,
)
from musedub.models.weights.store import ModelStore
from musedub.pipeline.core.ray_adapter import Pool, apply, piece_id
from musedub.pipeline.dub.blend_stage import BlendEncodeStage, chosen_mask
from musedub.pipeline.dub.face_stages import CropStage, TrackFacesStage
from musedub.pipeline.dub.manifest import JobSpec
from musedub.pipeline.dub.model_stages import AudioPromptStage, GenerateStage
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import JobPlan, plan_job
from musedub.pipeline.dub.report import committed_report, make_report, write_report
from musedub.pipeline.face.crop_geometry import FaceStatus
from musedub.pipeline.media.stitch import stitch

log = logging.getLogger(__name__)
WORK_FOLDER = ".musedub-work"


def default_work(output: str, job_id: str) -> str:
    """The job's work prefix: beside its output, so it lives on the same store and permissions."""
    parent = str(PurePosixPath(output).parent) if "://" not in output else output.rsplit("/", 1)[0]
    return join_uri(parent, WORK_FOLDER, job_id)


@dataclass
class JobState:
    plan: JobPlan
    work: str
    landmarks: np.ndarray | None = None
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    done: set[str] = field(default_factory=set)  # segment ids finished
    reused: int = 0

    def segment_uri(self, segment_id: str) -> str:
        return join_uri(self.work, f"{segment_id}.mp4")

    @property
    def finished(self) -> bool:
        return len(self.done) == len(self.plan.segments())


class ProgressSink(Protocol):
    def planned(self, total_frames: int) -> None: ...

    def segment_done(self, state: JobState, frames: int) -> None: ...

    def job_done(self, outcome: JobOutcome) -> None: ...


@dataclass
class JobOutcome:
    job_id: str
    status: str  # done, up to date, failed
    output: str
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    segments_run: int = 0
    segments_reused: int = 0


@dataclass(frozen=True)
class BatchSettings:
    weights: str
    options: DubOptions
    device: str = "auto"
    dtype: str = "fp32"
    work: str | None = None  # root for work prefixes; default beside each output
    cpu_pool: int = 0  # actors per CPU stage; 0 = derive from the cluster
    gpu_pool: int = 0  # generator actors; 0 = one per GPU (one CPU actor without GPUs)


def pools(settings: BatchSettings, resources: dict[str, float]) -> dict[str, Pool]:
    """Pool sizes and per-actor resources from the cluster, keeping half a CPU free for Ray Data's
    own tasks (an actor pool that takes every CPU starves them and the batch deadlocks).

    Tracking runs alone, before the segments, so its pool spreads over every CPU; the segment
    pools (crop, prompt, generate, blend) run at once and share them.
    """
    cpus = resources.get("CPU", 1.0)
    gpus = int(resources.get("GPU", 0))
    cpu_pool = settings.cpu_pool or max(1, int(cpus // 4))
    gpu_pool = settings.gpu_pool or max(1, gpus)
    # "cuda" asks for GPU actors even before an autoscaler has added a GPU node; "auto" uses GPUs present
    use_gpu = settings.device == "cuda" or (gpus > 0 and settings.device != "cpu")
    cpu_actors = 2 * cpu_pool + 1 + (0 if use_gpu else gpu_pool)  # crop, blend + prompt (+ generate)
    each = round(min(1.0, max(0.05, (cpus - 0.5) / cpu_actors)), 3)
    trackers = settings.cpu_pool or max(1, int(cpus - 0.5))
    return {
        "track": Pool(trackers, round(min(1.0, max(0.05, (cpus - 0.5) / trackers)), 3)),
        "crop": Pool(cpu_pool, each),
        "prompt": Pool(1, each),
        "generate": Pool(gpu_pool, each, 1.0 if use_gpu else 0.0),
        "blend": Pool(cpu_pool, each),
    }


def _plan_remote(spec: JobSpec, options: DubOptions, weights: str) -> JobPlan | str:
    try:
        return plan_job(spec.job_id, spec.video, spec.audio, spec.output, options, weights)
    except MusedubError as exc:
        return str(exc)


def _finish_remote(state: JobState, random_weights: bool, mask: str, keep_work: bool) -> JobOutcome:
    """Stitch a job's segments, commit the output and its report, clear the work prefix."""
    plan = state.plan
    tick = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="musedub-stitch-") as tmp:
            files = [
                fetch_file(state.segment_uri(s.segment_id), Path(tmp) / f"{s.index:06d}.mp4", "segment")
                for s in plan.segments()
            ]
            stitched = Path(tmp) / "stitched.mp4"
            stitch(files, plan.fps_fraction, plan.audio, stitched)
            commit_file(stitched, plan.output, "output")
    except MusedubError as exc:
        return JobOutcome(plan.job_id, "failed", plan.output, error=str(exc))
    seconds = Counter(state.seconds)
    seconds["stitch+commit"] += time.perf_counter() - tick
    segments = len(plan.segments())
    report = make_report(plan, state.statuses, seconds, mask, random_weights, segments, state.reused)
    write_report(report)
    if not keep_work:
        remove_tree(state.work)
    return JobOutcome(
        plan.job_id,
        "done",
        plan.output,
        frames=plan.total,
        seconds=sum(v for k, v in seconds.items()),
        segments_run=segments - state.reused,
        segments_reused=state.reused,
    )


class BatchRunner:
    def __init__(self, settings: BatchSettings, resources: dict[str, float], keep_work: bool = False) -> None:
        self.settings = settings
        self.pools = pools(settings, resources)
        self.keep_work = keep_work
        self.failed: dict[str, str] = {}

    # -- plan ---------------------------------------------------------------------------------
    def _job_options(self, spec: JobSpec) -> DubOptions:
        return self.settings.options.model_copy(update=spec.overrides())

    def plan(self, jobs: list[JobSpec]) -> tuple[list[JobState], list[JobOutcome]]:
        remote = ray.remote(num_cpus=0.25)(_plan_remote)
        refs = [remote.remote(spec, self._job_options(spec), self.settings.weights) for spec in jobs]
        states, outcomes = [], []
        for spec, result in zip(jobs, ray.get(refs), strict=True):
            if isinstance(result, str):
                outcomes.append(JobOutcome(spec.job_id, "failed", spec.output, error=result))
                continue
            if committed_report(result) is not None:
                outcomes.append(JobOutcome(spec.job_id, "up to date", spec.output, frames=result.total))
                continue
            work = (
                join_uri(self.settings.work, spec.job_id)
                if self.settings.work
                else default_work(spec.output, spec.job_id)
            )
            for name in list_files(work):
                if name.startswith("failed-"):  # a rerun tries failed pieces again
                    remove_tree(join_uri(work, name))
            states.append(JobState(result, work))
        return states, outcomes

    # -- track --------------------------------------------------------------------------------
    def track(self, states: list[JobState]) -> None:
        rows = []
        for state in states:
            present = set(list_files(state.work))
            state.landmarks = np.full((state.plan.video_frames, 68, 2), np.nan, np.float32)
            for start, stop in state.plan.track_chunks():
                row = {**state.plan.chunk_row(start, stop), "work": state.work}
                name = f"{piece_id(row)}.npy"
                if name in present:
                    state.landmarks[start:stop] = np.load(_bytes_file(join_uri(state.work, name)))
                else:
                    rows.append(row)
        if rows:
            threads = self.settings.options.cpu_threads
            factory = partial(TrackFacesStage, self.settings.weights, self.settings.options)
            dataset = apply(
                ray.data.from_items(rows, override_num_blocks=len(rows)), factory, self.pools["track"], threads
            )
            by_key = {s.plan.key: s for s in states}
            for out in dataset.iter_rows():
                state = by_key[out["job_key"]]
                state.landmarks[out["chunk_start"] : out["chunk_stop"]] = out["landmarks"]
                state.seconds.update(json.loads(out["seconds"]))
                buffer = _npy_bytes(np.asarray(out["landmarks"], np.float32))
                write_bytes_atomic(join_uri(state.work, f"{piece_id(out)}.npy"), buffer, "track chunk")

    # -- segments -----------------------------------------------------------------------------
    def segments(self, states: list[JobState], progress: ProgressSink, complete: Callable[[JobState], None]) -> None:
        """Run every unfinished segment; `complete(state)` as soon as all of a job's are done, so
        jobs are committed while the rest of the batch still runs."""
        rows = []
        for state in states:
            assert state.landmarks is not None
            present = set(list_files(state.work))
            for segment in state.plan.segments():
                if {f"{segment.segment_id}.mp4", f"{segment.segment_id}.json"} <= present:
                    record = json.loads(
                        read_bytes(join_uri(state.work, f"{segment.segment_id}.json"), "segment record")
                    )
                    state.statuses.update(record["statuses"])
                    state.done.add(segment.segment_id)
                    state.reused += 1
                    progress.segment_done(state, segment.frames)
                    continue
                row = state.plan.segment_row(segment, state.landmarks)
                rows.append({**row, "work": state.work, "segment_file": state.segment_uri(segment.segment_id)})
            if state.finished:
                complete(state)
        if not rows:
            return
        s, p, threads = self.settings, self.pools, self.settings.options.cpu_threads
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        dataset = apply(dataset, partial(CropStage, s.options), p["crop"], threads)
        dataset = apply(dataset, partial(AudioPromptStage, s.weights, "cpu"), p["prompt"], threads)
        generate_device = "cuda" if p["generate"].gpus else "cpu"
        dataset = apply(
            dataset, partial(GenerateStage, s.weights, s.options, generate_device, s.dtype), p["generate"], threads
        )
        dataset = apply(dataset, partial(BlendEncodeStage, s.options, s.weights, "cpu"), p["blend"], threads)
        by_key = {state.plan.key: state for state in states}
        for out in dataset.iter_rows():
            state = by_key[out["job_key"]]
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

    # -- whole batch --------------------------------------------------------------------------
    def run(self, jobs: list[JobSpec], progress: ProgressSink) -> list[JobOutcome]:
        states, outcomes = self.plan(jobs)
        progress.planned(sum(state.plan.total for state in states))
        self.track(states)
        live = []
        for state in states:
            error = self._failure(state)
            if error is None and state.landmarks is not None and np.isnan(state.landmarks[:, 0, 0]).all():
                error = f"video {state.plan.video}: no face found in any frame: check the video shows a face"
            if error is None:
                live.append(state)
            else:
                outcomes.append(JobOutcome(state.plan.job_id, "failed", state.plan.output, error=error))
        random = ModelStore(self.settings.weights).layout.is_random
        mask = chosen_mask(self.settings.options, self.settings.weights)
        finish = ray.remote(num_cpus=0.25)(_finish_remote)
        pending: list[ray.ObjectRef] = []

        def report(timeout: float | None) -> None:
            nonlocal pending
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=timeout)
            for outcome in ray.get(ready):
                progress.job_done(outcome)
                outcomes.append(outcome)

        def complete(state: JobState) -> None:
            # landmarks stay here: the finishing task needs only the segments' records
            pending.append(finish.remote(replace(state, landmarks=None), random, mask, self.keep_work))
            report(timeout=0)

        self.segments(live, progress, complete)
        for state in live:
            if not state.finished:
                missing = [s for s in state.plan.segments() if s.segment_id not in state.done]
                error = self._failure(state) or (
                    f"{len(missing)} segment(s) did not finish (first at frame {missing[0].start})"
                )
                outcomes.append(JobOutcome(state.plan.job_id, "failed", state.plan.output, error=error))
        report(timeout=None)
        order = {spec.job_id: i for i, spec in enumerate(jobs)}
        return sorted(outcomes, key=lambda o: order[o.job_id])

    @staticmethod
    def _failure(state: JobState) -> str | None:
        names = [n for n in list_files(state.work) if n.startswith("failed-")]
        if not names:
            return None
        return read_bytes(join_uri(state.work, names[0]), "failure record").decode()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _bytes_file(uri: str) -> io.BytesIO:
    return io.BytesIO(read_bytes(uri, "track chunk"))
