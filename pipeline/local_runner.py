"""Run one dubbing job in process: the same stages the cluster runs, one segment at a time.

Memory is bounded by a segment (crops and generated faces of ~10 s) plus a few decoded frames,
never by the video's length. Nothing appears at the output until the finished file is committed.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.errors import InputError
from infra.malloc_tuning import tune_malloc
from infra.model_store import ModelStore
from infra.storage import check_writable, commit_file, validate_uri, write_bytes_atomic
from pipeline.audio_decode import decode_audio_16k_mono
from pipeline.audio_windows import parse_fps, video_frame_count
from pipeline.blend_stage import BlendEncodeStage
from pipeline.crop_geometry import FaceStatus
from pipeline.dub_options import DubOptions
from pipeline.face_stages import CropStage, TrackFacesStage
from pipeline.length_policy import output_frame_count, source_frames
from pipeline.model_stages import AudioPromptStage, GenerateStage
from pipeline.segments import job_id_for, plan_segments
from pipeline.stage import Row
from pipeline.stitch import stitch
from pipeline.video_probe import probe_video

log = logging.getLogger(__name__)


@dataclass
class DubReport:
    """What a job did, written as JSON beside its output."""

    job_id: str
    video: str
    audio: str
    output: str
    video_description: str
    fps: str
    source_frames: int
    output_frames: int
    audio_seconds: float
    faces: dict[str, int]
    seconds: dict[str, float]
    options: dict[str, Any]
    weights: str
    random_weights: bool
    mask: str
    segments: int = 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def report_uri(output: str) -> str:
    return output + ".report.json"


class LocalRunner:
    """Owns the stages for one process; `dub` can be called for many jobs."""

    def __init__(self, options: DubOptions, weights: str, device: str = "auto", dtype: str = "fp32") -> None:
        tune_malloc()
        self.options = options
        self.weights = weights
        self.track = TrackFacesStage(weights, options)
        self.crop = CropStage(options)
        self.prompt = AudioPromptStage(weights, "cpu")
        self.generate = GenerateStage(weights, options, device, dtype)
        self.blend = BlendEncodeStage(options, weights, device)
        for stage in (self.generate, self.track, self.crop, self.prompt, self.blend):
            stage.setup()

    def dub(self, video: str, audio: str, output: str) -> DubReport:
        """Dub one video; raises InputError (nothing written) for bad inputs."""
        for uri, what in ((video, "video"), (audio, "dub audio")):
            validate_uri(uri, what)
        check_writable(output, "output")
        seconds: Counter[str] = Counter()
        started = time.perf_counter()
        info = probe_video(video, parse_fps(self.options.still_fps))
        samples = decode_audio_16k_mono(audio, "dub audio")
        audio_frames = video_frame_count(len(samples), info.fps)
        total = output_frame_count(audio_frames, info.frame_count, self.options.length_policy)
        if total == 0:
            raise InputError(
                f"dub audio {audio} lasts {len(samples) / 16000:.3f} s, less than one frame at {info.fps} fps: "
                "give longer audio"
            )
        job_id = job_id_for(video, audio, output)
        log.info("job %s: %s; dub audio %.2f s -> %d frames", job_id, info.describe(), len(samples) / 16000, total)
        seconds["probe"] += time.perf_counter() - started
        job = {
            "job_id": job_id,
            "video": video,
            "audio": audio,
            "fps": str(info.fps),
            "still_fps": self.options.still_fps,
        }
        tracked = self._timed(self.track, job, seconds)
        statuses: Counter[str] = Counter()
        with tempfile.TemporaryDirectory(prefix="musedub-") as work:
            files = []
            segments = plan_segments(job_id, total, info.fps, self.options.segment_seconds)
            for segment in segments:
                source = source_frames(segment.start, segment.stop, info.frame_count, self.options.length_policy)
                row: Row = {
                    **job,
                    "segment_id": segment.segment_id,
                    "start": segment.start,
                    "stop": segment.stop,
                    "source": source,
                    "landmarks": tracked["landmarks"][source],
                    "segment_file": str(Path(work) / f"{segment.segment_id}.mp4"),
                }
                for stage in (self.crop, self.prompt, self.generate, self.blend):
                    row = self._timed(stage, row, seconds)
                statuses.update(FaceStatus(s).name.lower() for s in row["status"])
                files.append(Path(row["segment_file"]))
                log.info(
                    "job %s: segment %d/%d done (%d frames)", job_id, segment.index + 1, len(segments), segment.frames
                )
            tick = time.perf_counter()
            stitched = Path(work) / "stitched.mp4"
            stitch(files, info.fps, audio, stitched)
            commit_file(stitched, output, "output")
            seconds["stitch+commit"] += time.perf_counter() - tick
        seconds["total"] = time.perf_counter() - started
        report = DubReport(
            job_id=job_id,
            video=video,
            audio=audio,
            output=output,
            video_description=info.describe(),
            fps=str(info.fps),
            source_frames=info.frame_count,
            output_frames=total,
            audio_seconds=round(len(samples) / 16000, 3),
            faces={s.name.lower(): statuses.get(s.name.lower(), 0) for s in FaceStatus},
            seconds={k: round(v, 3) for k, v in seconds.items()},
            options=self.options.model_dump(),
            weights=self.weights,
            random_weights=ModelStore(self.weights).layout.is_random,
            mask=self.blend.mask_source,
            segments=len(segments),
        )
        write_bytes_atomic(report_uri(output), report.to_json().encode(), "report")
        return report

    @staticmethod
    def _timed(stage: Any, row: Row, seconds: Counter[str]) -> Row:
        tick = time.perf_counter()
        out = stage(row)
        seconds[type(stage).__name__.removesuffix("Stage")] += time.perf_counter() - tick
        return out
