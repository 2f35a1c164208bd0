"""`write_job_preview`: the preview page of one finished job, from its report and its files.

Everything comes from (report, source video, output, dub audio, landmark backend + weights), so
`dub` calls it in process and a batch on whichever worker committed the job. It probes both
videos (a demux, no decode), decodes only the sampled frames (`sampling.py`), runs landmarks on
at most PLOT_SECONDS of the output, and publishes `<output>.preview.html` atomically.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from musedub.infra.errors import InputError
from musedub.infra.storage import read_bytes, write_bytes_atomic
from musedub.models.landmarks import LandmarkDetector, load_landmark_detector
from musedub.models.weights.store import ModelStore
from musedub.pipeline.audio.voicing import FLOOR_DB, frame_energy
from musedub.pipeline.dub.length_policy import source_frames
from musedub.pipeline.dub.preview.dubbed_face import DubbedFace, track_dubbed_face
from musedub.pipeline.dub.preview.job_page import job_page
from musedub.pipeline.dub.preview.media import crop_square, jpeg_uri, mouth_boxes, side_by_side, webm_uri
from musedub.pipeline.dub.preview.sampling import clip_frames, dubbed_spans, plot_window, still_frames
from musedub.pipeline.dub.preview.sync_plot import sync_fit, sync_svg
from musedub.pipeline.media.audio_decode import decode_audio_span
from musedub.pipeline.media.frame_rate import parse_fps
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import probe_video

REPORT_KEYS = ("job_id", "fps", "source_frames", "output_frames", "options", "video", "audio", "output")
AUDIO_RATE = 16000


def preview_uri(output: str) -> str:
    """Where a job's preview goes: beside its output, like its report."""
    return output + ".preview.html"


def read_report(report: dict[str, Any] | str) -> dict[str, Any]:
    """A report as written beside an output (a dict, or its URI); InputError when it is not one."""
    if isinstance(report, str):
        try:
            body = json.loads(read_bytes(report, "report"))
        except ValueError:
            raise InputError(f"report {report} is not JSON: give the .report.json a dub wrote") from None
        where = f"report {report}"
    else:
        body, where = report, "report"
    missing = [k for k in REPORT_KEYS if not isinstance(body, dict) or k not in body]
    if missing:
        raise InputError(f"{where} lacks {', '.join(missing)}: give the .report.json a dub wrote")
    return body


@functools.lru_cache(maxsize=2)
def load_detector(backend: str, weights: str) -> LandmarkDetector:
    """The job's landmark backend, loaded once per process (a batch worker previews many jobs);
    dlib needs no weights folder."""
    folder = ModelStore(weights).layout.face_alignment if backend == "face-alignment" else Path()
    return load_landmark_detector(backend, folder)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Sampled:
    """What the page shows that had to be decoded or measured."""

    stills: list[tuple[int, str]]  # (output frame, JPEG data URI of before | after)
    face: DubbedFace
    clip: str | None  # VP9 WebM data URI of the mouth, before | after; None without a face
    clip_frames: int
    level_db: np.ndarray  # (T,) dub audio level over the face's window


def _dub_level(audio: str, fps: Fraction, start: int, stop: int) -> np.ndarray:
    decoded = decode_audio_span(audio, float(start / fps), float((stop - start) / fps), "dub audio", AUDIO_RATE)
    if decoded is None:
        return np.full(stop - start, FLOOR_DB, np.float32)
    samples, rate = decoded
    return frame_energy(samples, rate, fps, stop - start, start)


def _sample(body: dict[str, Any], video: str, audio: str, output: str, detector: LandmarkDetector) -> Sampled:
    fps, options = parse_fps(body["fps"]), body["options"]
    source_info = probe_video(video, parse_fps(options.get("still_fps", "25")))
    output_info = probe_video(output, what="output")
    total = min(int(body["output_frames"]), output_info.frame_count)
    if total == 0:
        raise InputError(f"output {output} holds no frames: dub the job again")
    count, policy = int(body["source_frames"]), options.get("length_policy", "cycle")
    spans = dubbed_spans(body, total)
    start, stop = plot_window(spans, total, fps)
    frames = np.arange(start, stop)
    sources = source_frames(start, stop, count, policy)
    width = min(source_info.width, output_info.width)
    height = min(source_info.height, output_info.height)
    with FrameReader(output_info, "output") as out, FrameReader(source_info) as src:
        shown = still_frames(spans, total)
        fed = np.array([source_frames(int(i), int(i) + 1, count, policy)[0] for i in shown], np.int64)
        pairs = zip(src.frames(fed), out.frames(shown), strict=True)
        stills = [(int(i), jpeg_uri(side_by_side(b, a))) for i, (b, a) in zip(shown, pairs, strict=True)]
        face = track_dubbed_face(detector, out, src, frames, sources, fps, options)
        n = min(clip_frames(fps), len(frames))
        boxes = mouth_boxes(face.landmarks, width, height)  # the whole window: a face seen late still places the clip
        clip = None
        if boxes is not None:
            halves = [
                np.hstack([crop_square(b, box), crop_square(a, box)])
                for box, b, a in zip(boxes[:n], src.frames(sources[:n]), out.frames(frames[:n]), strict=True)
            ]
            clip = webm_uri(halves, fps)
    return Sampled(stills, face, clip, n, _dub_level(audio, fps, start, stop))


def write_job_preview(
    report: dict[str, Any] | str,
    weights: str,
    *,
    video: str | None = None,
    audio: str | None = None,
    output: str | None = None,
    detector: LandmarkDetector | None = None,
) -> str:
    """Write `<output>.preview.html` for a committed job and return its URI. The inputs default to
    those the report names; `detector` reuses a loaded landmark backend (else the report's own,
    from `weights`). InputError when the report, the output or an input cannot be read."""
    body = read_report(report)
    video, audio, output = video or body["video"], audio or body["audio"], output or body["output"]
    detector = detector or load_detector(body["options"].get("landmarks", "face-alignment"), weights)
    sampled = _sample(body, video, audio, output, detector)
    fps = parse_fps(body["fps"])
    face = sampled.face
    rests = [(int(r["frames"][0]), int(r["frames"][1])) for r in body.get("speakers", {}).get("dub_audio_rests", [])]
    svg = sync_svg(face.start, face.opening, sampled.level_db, fps, rests)
    page = job_page(body, video, audio, output, sampled, svg, sync_fit(face.opening, sampled.level_db))
    uri = preview_uri(output)
    write_bytes_atomic(uri, page.encode("utf-8"), "preview")
    return uri
