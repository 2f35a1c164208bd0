"""From a job's tracked chunks to the face dubbed in every output frame, and what the report says.

`dub` and `batch` both call this on the same chunk results, so they choose the same faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from musedub.pipeline.audio.voicing import runs, voiced_frames
from musedub.pipeline.core.stage import Row
from musedub.pipeline.dub.face_stages import gap_frames
from musedub.pipeline.dub.length_policy import source_frames
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import JobPlan
from musedub.pipeline.face.choice import FaceChoice, Why, choose
from musedub.pipeline.face.job_tracks import join_chunks
from musedub.pipeline.face.multi_track import SpanFaces
from musedub.pipeline.media.index import video_info
from musedub.pipeline.media.probe import VideoInfo

WHY_TEXT = {
    Why.NOBODY: "nobody speaks in the source: frames pass through",
    Why.SPEAKS: "speaks in the source",
    Why.SPOKE_NEAR: "nobody speaks here; the dub is voiced and this face speaks nearest in the shot",
    Why.CHOSEN: "chosen by --speaker",
    Why.NO_SOURCE_AUDIO: "the source has no audio: the largest face",
    Why.NO_SPEAKER_SEEN: "no face is seen speaking anywhere in the source: the largest face",
}


def chunk_faces(row: Row) -> SpanFaces:
    sync = np.asarray(row["sync"], np.float32)
    return SpanFaces(np.asarray(row["faces"], np.float32), np.asarray(row["cuts"], bool), sync)


def choose_faces(plan: JobPlan, chunks: Sequence[Row]) -> FaceChoice:
    """The job's tracks (chunks joined in frame order) and its `--speaker` policy applied to them."""
    return choose_in_video(chunks, plan.options, video_info(plan.base_row()))


def choose_in_video(chunks: Sequence[Row], options: DubOptions, info: VideoInfo) -> FaceChoice:
    """A video's tracked chunks -> its tracks and the `options.speaker` policy applied to them."""
    ordered = sorted(chunks, key=lambda row: int(row["chunk_start"]))
    fps = info.fps
    tracks, shot = join_chunks([(int(row["chunk_start"]), chunk_faces(row)) for row in ordered], gap_frames(fps))
    level = np.concatenate([np.asarray(row["level_db"], np.float32) for row in ordered])
    heard = not np.isnan(level).all()
    return choose(
        tracks,
        shot,
        level if heard else None,
        voiced_frames(level) if heard else None,
        options.speaker,
        fps,
        (info.width, info.height),
        options.speaker_min_span,
        info.uri,
    )


def all_source_frames(plan: JobPlan) -> np.ndarray:
    return source_frames(0, plan.total, plan.video_frames, plan.options.length_policy)


def face_spans(plan: JobPlan, choice: FaceChoice) -> list[dict[str, Any]]:
    """Per run of output frames: which track was dubbed and why (with its mean speaking score)."""
    source = all_source_frames(plan)
    rest = plan.rest_frames()
    track, why = choice.decide(source, rest)
    fps = plan.fps_fraction
    spans = []
    for start, stop, _ in runs(track.astype(np.int64) * 8 + why):
        t = int(track[start])
        reason = WHY_TEXT[Why(int(why[start]))]
        span: dict[str, Any] = {
            "frames": [start, stop],
            "seconds": [round(float(start / fps), 3), round(float(stop / fps), 3)],
            "track": t or None,
            "why": reason,
        }
        if t and t in choice.scores:
            scores = [choice.score_at(t, int(s)) for s in source[start:stop]]
            span["speaking_score"] = round(float(np.nanmean(scores)), 3)
        spans.append(span)
    return spans


def faces_summary(plan: JobPlan, choice: FaceChoice) -> dict[str, Any]:
    """The report's account of faces: the policy, the tracks, the spans dubbed and the dub's rests."""
    fps = plan.fps_fraction
    return {
        "speaker": plan.options.speaker,
        "detector": choice.detector or "none",
        "tracks": len(choice.tracks),
        "spans": face_spans(plan, choice),
        "dub_audio_rests": [
            {"frames": [a, b], "seconds": [round(float(a / fps), 3), round(float(b / fps), 3)]}
            for a, b in plan.rest_spans
        ],
        "rest_rule": "silent dub audio of 0.3 s or more: the chosen face is generated from silence (mouth at rest)",
    }
