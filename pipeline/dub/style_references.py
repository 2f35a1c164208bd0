"""The style generator's references for one job (docs/STYLE.md).

By default each dubbed face borrows from its own original performance: the source frames where
that face speaks (its track, chosen because it speaks there), or, when it speaks for less than
MIN_SECONDS, every frame where it is seen whole. With `--style-reference` one clip, or a folder of
clips, of the speaker serves every dubbed face: its largest face is tracked over its first
MAX_CLIP_SECONDS, and frames where that face is seen and the clip's audio is voiced are used.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from musedub.infra.errors import InputError
from musedub.models.landmarks import LandmarkDetector, load_landmark_detector
from musedub.models.weights.store import ModelStore
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.audio.voicing import frame_energy, voiced_frames
from musedub.pipeline.dub.job_faces import all_source_frames
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import JobPlan
from musedub.pipeline.face.choice import FaceChoice, Why
from musedub.pipeline.face.crop_geometry import FaceStatus, crop_box, face_status
from musedub.pipeline.face.track import FaceTracker
from musedub.pipeline.generators.reference_clips import reference_clips
from musedub.pipeline.generators.style_reference import (
    ANY_TRACK,
    MIN_SECONDS,
    ReferenceFrames,
    StyleReference,
    build_reference,
    describe_references,
    minimum_frames,
    write_references,
)
from musedub.pipeline.media.audio_decode import decode_audio_span
from musedub.pipeline.media.frame_rate import parse_fps
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import video_info
from musedub.pipeline.media.probe import VideoInfo, probe_video

MAX_CLIP_SECONDS = 120  # of each reference clip: minutes of one speaker are plenty, and tracking costs per frame

log = logging.getLogger(__name__)


def usable(
    info: VideoInfo, frames: np.ndarray, landmarks: np.ndarray, options: DubOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Of `frames` with `landmarks` (m, 68, 2), those whose face the dub would crop -> (mask (m,), boxes (m, 4))."""
    keep = np.zeros(len(frames), bool)
    boxes = np.zeros((len(frames), 4), np.int32)
    for i, marks in enumerate(landmarks):
        if np.isnan(marks).any():
            continue
        box = crop_box(marks, info.height, options.version, options.extra_margin, options.bbox_shift)
        if face_status(marks, box, info.width, info.height, options.min_face) == FaceStatus.OK:
            assert box is not None
            keep[i], boxes[i] = True, (box.x1, box.y1, box.x2, box.y2)
    return keep, boxes


def selected(
    info: VideoInfo, frames: np.ndarray, landmarks: np.ndarray, keep: np.ndarray, boxes: np.ndarray
) -> ReferenceFrames:
    return ReferenceFrames(info, frames[keep], landmarks[keep], boxes[keep])


def source_references(plan: JobPlan, choice: FaceChoice, prompter: AudioPrompter) -> dict[int, StyleReference]:
    """A reference per face the job dubs, from the source itself; faces seen too little for one of
    their own (a track cut short by a shot change, a face that never speaks) share ANY_TRACK's,
    pooled from every dubbed face's frames."""
    info = video_info(plan.base_row())
    dubbed, _ = choice.decide(all_source_frames(plan), plan.rest_frames())
    minimum = minimum_frames(info.fps)
    own: dict[int, ReferenceFrames] = {}
    for t in sorted({int(t) for t in dubbed} - {0}):
        track = choice.tracks[t]
        frames = np.arange(track.start, track.stop)
        keep, boxes = usable(info, frames, track.landmarks, plan.options)
        speaking = keep & (choice.primary[frames] == t) & (choice.why[frames] == Why.SPEAKS)
        own[t] = selected(info, frames, track.landmarks, speaking if speaking.sum() >= minimum else keep, boxes)
    references = {t: build_reference([f], prompter) for t, f in own.items() if len(f.frames) >= minimum}
    short = [t for t, f in own.items() if len(f.frames) < minimum]
    if short:
        pooled = [f for f in own.values() if len(f.frames)]
        if sum(len(f.frames) for f in pooled) < minimum:
            raise InputError(
                f"video {plan.video}: the dubbed faces are seen whole in {sum(len(f.frames) for f in pooled)} "
                f"frames, fewer than a style reference needs ({minimum}, {MIN_SECONDS:g} s): "
                "give --style-reference a clip of the speaker"
            )
        log.info(
            "job %s: faces %s are seen too little for their own style reference; they share one", plan.job_id, short
        )
        references[ANY_TRACK] = build_reference(pooled, prompter)
    return references


def clip_frames(uri: str, options: DubOptions, detector: LandmarkDetector) -> tuple[ReferenceFrames, int]:
    """One reference clip's usable speaking frames, and how many frames showed a face at all."""
    info = probe_video(uri, parse_fps(options.still_fps), "style reference")
    if info.still:
        raise InputError(f"style reference {uri} is a still image: give a video of the speaker talking")
    count = min(info.frame_count, round(MAX_CLIP_SECONDS * info.fps))
    decoded = decode_audio_span(uri, 0.0, float(count / info.fps), "style reference")
    if decoded is None:
        raise InputError(
            f"style reference {uri} has no audio: lips are looked up by sound, give a clip with the speaker's voice"
        )
    voiced = voiced_frames(frame_energy(*decoded, info.fps, count))
    with FrameReader(info) as reader:
        track = FaceTracker(detector, options.detect_every).track(reader.frames(range(count)), options.smooth_radius)
    frames = np.arange(count)
    keep, boxes = usable(info, frames, track.landmarks, options)
    return selected(info, frames, track.landmarks, keep & voiced, boxes), int(track.found.sum())


def clip_references(
    uri: str, options: DubOptions, prompter: AudioPrompter, detector: LandmarkDetector
) -> dict[int, StyleReference]:
    """`--style-reference`'s clip(s) -> one reference for every dubbed face."""
    found = [clip_frames(clip, options, detector) for clip in reference_clips(uri)]
    if not any(faces for _, faces in found):
        raise InputError(
            f"style reference {uri}: no face found in any frame: give a clip that shows the speaker's face"
        )
    frames = sum(len(f.frames) for f, _ in found)
    minimum = minimum_frames(found[0][0].video.fps)
    if frames < minimum:
        raise InputError(
            f"style reference {uri}: {frames} frames show the speaker's face while they speak, fewer than the "
            f"{minimum} ({MIN_SECONDS:g} s) a reference needs: give a longer clip"
        )
    return {ANY_TRACK: build_reference([f for f, _ in found if len(f.frames)], prompter)}


class ReferenceMaker:
    """Makes a style job's references; loads whisper (and, for a reference clip, the landmark
    detector) on first use, so MuseTalk jobs load nothing."""

    def __init__(self, weights: str, options: DubOptions) -> None:
        self.weights, self.options = weights, options
        self._prompter: AudioPrompter | None = None
        self._detector: LandmarkDetector | None = None

    def _whisper(self) -> AudioPrompter:
        if self._prompter is None:
            self._prompter = AudioPrompter(ModelStore(self.weights).load_audio_encoder("cpu"))
        return self._prompter

    def _landmarks(self) -> LandmarkDetector:
        if self._detector is None:
            layout = ModelStore(self.weights).layout
            self._detector = load_landmark_detector(self.options.landmarks, layout.face_alignment)
        return self._detector

    def given(self, options: DubOptions) -> dict[int, StyleReference] | None:
        """The reference made from `--style-reference`'s clips (None without one): `dub` makes it
        before tracking its video, so a bad reference fails in seconds."""
        uri = options.style_reference
        return clip_references(uri, options, self._whisper(), self._landmarks()) if uri else None

    def write(
        self, plan: JobPlan, choice: FaceChoice, uri: str, given: dict[int, StyleReference] | None = None
    ) -> dict[str, Any]:
        """The job's references (`given`, the clips', or the source's own) written to `uri` -> what
        the report says of them, with `file`: `uri`."""
        torch.set_num_threads(plan.options.cpu_threads)  # whisper's bits depend on it: as the job's other stages
        references = given or self.given(plan.options) or source_references(plan, choice, self._whisper())
        write_references(references, uri)
        made_from = plan.options.style_reference or "the source, where each dubbed face speaks"
        return {"file": uri, "from": made_from, "faces": describe_references(references)}
