"""Run one dubbing job in process: the same plan and stages the cluster runs, one segment at a time.

Memory is bounded by a segment (crops and generated faces of ~10 s) plus a few decoded frames,
never by the video's length. Nothing appears at the output until the finished file is committed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from musedub.infra.malloc_tuning import tune_malloc
from musedub.infra.storage import commit_file
from musedub.models.weights.store import ModelStore
from musedub.pipeline.core.stage import Row
from musedub.pipeline.dub.blend_stage import BlendEncodeStage
from musedub.pipeline.dub.face_stages import CropStage, TrackFacesStage, require_a_face
from musedub.pipeline.dub.job_faces import choose_faces, faces_summary
from musedub.pipeline.dub.model_stages import AudioPromptStage, GenerateStage
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import JobPlan, plan_job
from musedub.pipeline.dub.report import DubReport, make_report, write_report
from musedub.pipeline.dub.style_references import ReferenceMaker
from musedub.pipeline.face.crop_geometry import FaceStatus
from musedub.pipeline.media.stitch import stitch

log = logging.getLogger(__name__)


PhaseProgress = Callable[[str, int, int, float], None]  # (phase, done, total, frames/s)


def track_job(
    plan: JobPlan, track: TrackFacesStage, seconds: Counter[str], progress: PhaseProgress | None = None
) -> list[Row]:
    """Every face of the whole source, chunk by chunk as the cluster does; a line per chunk (and
    `progress`), so a long video shows progress from its first seconds, not after tracking."""
    chunks = []
    started = time.perf_counter()
    for start, stop in plan.track_chunks():
        chunks.append(timed(track, plan.chunk_row(start, stop), seconds))
        rate = stop / max(time.perf_counter() - started, 1e-6)
        if progress is not None:
            progress("faces tracked", stop, plan.video_frames, rate)
        log.info(
            "job %s: faces tracked in frames %d-%d of %d (%.1f frames/s)",
            plan.job_id,
            start,
            stop,
            plan.video_frames,
            rate,
        )
    return chunks


def timed(stage: Any, row: Row, seconds: Counter[str]) -> Row:
    tick = time.perf_counter()
    out = stage(row)
    seconds[type(stage).__name__.removesuffix("Stage")] += time.perf_counter() - tick
    return out


class LocalRunner:
    """Owns the stages for one process; `dub` can be called for many jobs."""

    def __init__(
        self, options: DubOptions, weights: str, device: str = "auto", dtype: str = "auto", compile: bool = False
    ) -> None:
        tune_malloc()
        torch.set_num_threads(options.cpu_threads)  # output bits depend on it; the cluster pins the same
        self.options = options
        self.weights = weights
        self.track = TrackFacesStage(weights, options)
        self.crop = CropStage(options)
        self.prompt = AudioPromptStage(weights, "cpu")
        self.generate = GenerateStage(weights, options, device, dtype, compile)
        self.blend = BlendEncodeStage(options, weights, device)
        self.references = ReferenceMaker(weights, options)
        self._ready = False

    def setup(self) -> None:
        """Load the models (once). `dub` calls it after planning, so bad input fails before any model loads."""
        if not self._ready:
            for stage in (self.generate, self.track, self.crop, self.prompt, self.blend):
                stage.setup()
            self._ready = True

    def dub(self, video: str, audio: str, output: str, progress: PhaseProgress | None = None) -> DubReport:
        """Dub one video; raises InputError (nothing written) for bad inputs. `progress` hears of each
        tracked chunk and each written segment."""
        started = time.perf_counter()
        plan = plan_job(None, video, audio, output, self.options, self.weights)
        self.setup()
        log.info(
            "job %s: %s; dub audio %.2f s -> %d frames", plan.job_id, plan.description, plan.audio_seconds, plan.total
        )
        seconds: Counter[str] = Counter({"probe": plan.plan_seconds})
        style = plan.options.generator == "style"
        tick = time.perf_counter()
        given = self.references.given(plan.options) if style else None  # a bad reference fails before tracking
        if style:
            seconds["StyleReference"] += time.perf_counter() - tick
        choice = choose_faces(plan, track_job(plan, self.track, seconds, progress))
        require_a_face(video, len(choice.tracks))
        statuses: Counter[str] = Counter()
        segments = plan.segments()
        dubbing = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="musedub-") as work:
            reference, summary = "", faces_summary(plan, choice)
            if style:
                tick = time.perf_counter()
                made = self.references.write(plan, choice, str(Path(work) / f"style-{plan.key}.npz"), given)
                reference = made.pop("file")
                summary["style_reference"] = made
                seconds["StyleReference"] += time.perf_counter() - tick
            files = []
            for segment in segments:
                row = {
                    **plan.segment_row(segment, choice, reference),
                    "segment_file": str(Path(work) / f"{segment.segment_id}.mp4"),
                }
                for stage in (self.crop, self.prompt, self.generate, self.blend):
                    row = timed(stage, row, seconds)
                statuses.update(FaceStatus(s).name.lower() for s in row["status"])
                files.append(Path(row["segment_file"]))
                log.info(
                    "job %s: segment %d/%d done (%d frames)",
                    plan.job_id,
                    segment.index + 1,
                    len(segments),
                    segment.frames,
                )
                if progress is not None:
                    rate = segment.stop / max(time.perf_counter() - dubbing, 1e-6)
                    progress("frames dubbed", segment.stop, plan.total, rate)
            tick = time.perf_counter()
            stitched = Path(work) / "stitched.mp4"
            stitch(files, plan.fps_fraction, audio, stitched, plan.audio_identity)
            commit_file(stitched, output, "output")
            seconds["stitch+commit"] += time.perf_counter() - tick
        seconds["total"] = time.perf_counter() - started
        random = ModelStore(self.weights).layout.is_random
        report = make_report(plan, statuses, seconds, self.blend.mask_source, random, len(segments), faces=summary)
        write_report(report)
        return report
