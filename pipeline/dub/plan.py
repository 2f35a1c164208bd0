"""Plan one dubbing job: probe its inputs, fix its length, cut it into track chunks and segments.

The single-video runner and the batch share this, so a job cut into segments on a cluster makes
the same frames as `musedub dub`. A job's key hashes its inputs' checksums, options and weights:
segment files named by it are found again by a rerun and ignored once anything changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from musedub.infra.errors import InputError
from musedub.infra.storage import check_writable, checksum, identity, same_location, unchanged_key, validate_uri
from musedub.pipeline.audio.voicing import FrameLevels, rest_mask, runs
from musedub.pipeline.audio.windows import SAMPLE_RATE, video_frame_count
from musedub.pipeline.core.stage import Row
from musedub.pipeline.dub.length_policy import output_frame_count, source_frames
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.segments import Segment, job_id_for, plan_segments
from musedub.pipeline.face.choice import FaceChoice
from musedub.pipeline.generators.reference_clips import reference_checksum
from musedub.pipeline.generators.requirements import require_generator_weights
from musedub.pipeline.media.audio_decode import audio_16k_mono_pieces
from musedub.pipeline.media.encode import even_size
from musedub.pipeline.media.frame_rate import parse_fps
from musedub.pipeline.media.index import INDEX_KEY, remember
from musedub.pipeline.media.probe import VideoInfo, probe_video

PLAN_VERSION = 3  # bump when the same inputs would give different frames (3: several faces, rests)

log = logging.getLogger(__name__)


def track_chunks(frames: int, fps: Fraction, segment_seconds: float) -> list[tuple[int, int]]:
    """Source frame spans tracked independently (as long as segments)."""
    size = max(1, round(Fraction(segment_seconds) * fps))
    return [(start, min(start + size, frames)) for start in range(0, frames, size)]


def job_key(video: str, audio: str, output: str, checksums: dict[str, str], options: DubOptions, weights: str) -> str:
    """What a job's output depends on, hashed: equal keys mean the committed output is current.
    Needs only checksums (a HEAD on object stores), so a catalogue is checked without probing."""
    identity = {
        "plan": PLAN_VERSION,
        "video": video,
        "audio": audio,
        "output": output,
        "checksums": checksums,
        "options": options.key_fields(),
        "weights": weights,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class JobPlan:
    job_id: str
    video: str
    audio: str
    output: str
    options: DubOptions
    weights: str
    fps: str
    video_frames: int  # constant-rate source frames
    total: int  # output frames
    audio_seconds: float
    description: str
    checksums: dict[str, str]
    key: str = field(init=False)
    plan_seconds: float = 0.0
    media_index: str = ""  # the probed video's index file, for stages in other processes
    audio_identity: str = ""  # the dub audio as planned: every later read checks it (infra.storage.identity)
    rest_spans: tuple[tuple[int, int], ...] = ()  # output frames [a, b) where the dub audio is silent

    def rest_frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(stop - start,) bool over output frames [start, stop) (default: all): the dub audio is
        silent for 0.3 s or more around the frame."""
        stop = self.total if stop is None else stop
        rest = np.zeros(stop - start, bool)
        for a, b in self.rest_spans:
            rest[max(a, start) - start : max(min(b, stop) - start, 0)] = True
        return rest

    def __post_init__(self) -> None:
        key = job_key(self.video, self.audio, self.output, self.checksums, self.options, self.weights)
        object.__setattr__(self, "key", key)

    @property
    def content_key(self) -> str:
        """What the frames depend on, unlike `key` not where they go: seeds the style generator's
        noise, so a batch writing elsewhere makes the frames `dub` makes."""
        content = {"plan": PLAN_VERSION, "checksums": self.checksums, "options": self.options.key_fields()}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]

    @property
    def fps_fraction(self) -> Fraction:
        return parse_fps(self.fps)

    def segments(self) -> list[Segment]:
        return plan_segments(self.key, self.total, parse_fps(self.fps), self.options.segment_seconds)

    def track_chunks(self) -> list[tuple[int, int]]:
        return track_chunks(self.video_frames, self.fps_fraction, self.options.segment_seconds)

    def base_row(self) -> Row:
        return {
            "job_id": self.job_id,
            "job_key": self.key,
            "video": self.video,
            "audio": self.audio,
            "fps": self.fps,
            "still_fps": self.options.still_fps,
            "options": self.options.model_dump_json(),
            INDEX_KEY: self.media_index,
            "audio_identity": self.audio_identity,
        }

    def chunk_row(self, start: int, stop: int) -> Row:
        return {**self.base_row(), "chunk_start": start, "chunk_stop": stop, "frame_count": self.video_frames}

    def segment_row(self, segment: Segment, choice: FaceChoice, style_reference: str = "") -> Row:
        """A segment's frames, with the face `choice` dubs in each and where the dub audio rests
        (and, for the style generator, the job's reference file)."""
        source = source_frames(segment.start, segment.stop, self.video_frames, self.options.length_policy)
        rest = self.rest_frames(segment.start, segment.stop)
        faces = choice.for_output(source, rest)
        return {
            **self.base_row(),
            "segment_id": segment.segment_id,
            "start": segment.start,
            "stop": segment.stop,
            "source": source,
            "landmarks": faces.landmarks,
            "dubbed": faces.track,
            "passed": faces.passed,
            "rest": rest,
            "style_reference": style_reference,
            "content_key": self.content_key,
        }

    def report_fields(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "job_key": self.key,
            "video": self.video,
            "audio": self.audio,
            "output": self.output,
            "video_description": self.description,
            "fps": self.fps,
            "source_frames": self.video_frames,
            "output_frames": self.total,
            "audio_seconds": self.audio_seconds,
            "checksums": self.checksums,
            "options": self.options.model_dump(mode="json"),
            "weights": self.weights,
        }


def report_uri(output: str) -> str:
    """Where a job's report goes: beside its output."""
    return output + ".report.json"


def probed_video(video: str, still_fps: Fraction) -> tuple[VideoInfo, str]:
    """A video's probe and checksum, made once per version of it in this process: a manifest dubs
    one film into many languages, and probing reads every packet of it (the whole object) and a
    local checksum every byte. A version is what `unchanged_key` says: a stat or a HEAD, as cheap
    as the checks every stage makes anyway."""
    return _probe_version(video, still_fps, unchanged_key(video, "video"))


@lru_cache(maxsize=8)  # videos a process remembers (a film's index is a few MB)
def _probe_version(video: str, still_fps: Fraction, version: str) -> tuple[VideoInfo, str]:
    return probe_video(video, still_fps), checksum(video, "video")


def plan_job(job_id: str | None, video: str, audio: str, output: str, options: DubOptions, weights: str) -> JobPlan:
    """Probe and size one job; InputError (naming the input) when it cannot be dubbed. The probe
    is kept for this process's stages (`media.index.video_info`)."""
    started = time.perf_counter()
    validate_uri(output, "output")
    for uri, what in ((video, "video"), (audio, "dub audio")):
        validate_uri(uri, what)
        for written in (output, report_uri(output)):
            if same_location(written, uri):
                raise InputError(f"output {written} is the {what} itself: write the dub to another path")
    check_writable(output, "output")
    require_generator_weights(options.generator, weights)
    info, video_checksum = probed_video(video, parse_fps(options.still_fps))
    if info.width % 2 or info.height % 2:
        log.warning(
            "video %s is %dx%d: the output is %dx%d (H.264 4:2:0 needs even sides; the edge row/column repeats)",
            video,
            info.width,
            info.height,
            *even_size(info.width, info.height),
        )
    audio_identity = identity(audio, "dub audio")
    levels = FrameLevels(SAMPLE_RATE, info.fps)  # measured as it decodes: a film's track is never held
    for piece in audio_16k_mono_pieces(audio, "dub audio", audio_identity):
        levels.add(piece)
    total = output_frame_count(video_frame_count(levels.samples, info.fps), info.frame_count, options.length_policy)
    if total == 0:
        raise InputError(
            f"dub audio {audio} lasts {levels.samples / SAMPLE_RATE:.3f} s, less than one frame at {info.fps} fps: "
            "give longer audio"
        )
    checksums = {"video": video_checksum, "audio": checksum(audio, "dub audio")}
    if options.generator == "style" and options.style_reference:
        checksums["style_reference"] = reference_checksum(validate_uri(options.style_reference, "style reference"))
    plan = JobPlan(
        job_id=job_id or job_id_for(video, audio, output),
        video=video,
        audio=audio,
        output=output,
        options=options,
        weights=weights,
        fps=str(info.fps),
        video_frames=info.frame_count,
        total=total,
        audio_seconds=round(levels.samples / SAMPLE_RATE, 3),
        description=info.describe(),
        checksums=checksums,
        plan_seconds=time.perf_counter() - started,
        audio_identity=audio_identity,
        rest_spans=tuple((a, b) for a, b, silent in runs(rest_mask(levels.levels(total), info.fps)) if silent),
    )
    remember(plan.key, info)
    return plan
