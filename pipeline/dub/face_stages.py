"""CPU stages on the face: landmarks for a chunk of a job's video, then crops for each segment.

Row keys read and added:
- TrackFacesStage: video, still_fps, fps, chunk_start, chunk_stop, frame_count -> for source frames
  [chunk_start, chunk_stop): faces (T, n, 68, 2) float32 per track (NaN where unseen), cuts (n,)
  bool (a shot starts), level_db (n,) float32 the source audio's level (NaN: no audio), sync (T, n)
  float32 SyncNet's speaking probability (NaN where it did not run)
- CropStage: video, still_fps, source (n,), landmarks (n, 68, 2) of the face dubbed (NaN: none),
  passed (n,) bool (faces there, none chosen) -> status (n,) uint8,
  boxes (n, 4) int32 (x1, y1, x2, y2; zeros unless OK), crops (k, 256, 256, 3) uint8 for the k OK frames
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from musedub.infra.errors import ConfigError, InputError
from musedub.models.constants import CROP_SIZE
from musedub.models.landmarks import LandmarkDetector, load_landmark_detector
from musedub.models.syncnet import SYNC_FRAMES, SyncNet
from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.store import ModelStore
from musedub.pipeline.audio.log_mel import log_mel, mel_window
from musedub.pipeline.audio.voicing import frame_energy
from musedub.pipeline.audio.windows import SAMPLE_RATE
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.dub.options import DubOptions, job_options
from musedub.pipeline.face.crop_geometry import FaceStatus, crop_box, crop_face, face_status
from musedub.pipeline.face.multi_track import MultiFaceTracker, SpanFaces
from musedub.pipeline.face.speaker import MAX_OFFSET
from musedub.pipeline.face.sync_speaker import SyncScorer, syncnet_fits
from musedub.pipeline.media.audio_decode import decode_audio_span
from musedub.pipeline.media.frame_rate import parse_fps
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import video_info

log = logging.getLogger(__name__)


def require_a_face(video: str, tracks: int) -> None:
    """A job whose video shows no face in any frame fails (in `dub` and in `batch` alike): passing
    every frame through unchanged would look like success."""
    if tracks == 0:
        raise InputError(f"video {video}: no face found in any frame: check the video shows a face")


def gap_frames(fps: Fraction) -> int:
    """A face missed for up to half a second keeps its track."""
    return max(1, round(fps / 2))


def source_level(video: str, fps: Fraction, start: int, stop: int) -> np.ndarray:
    """The source's own audio level (dB) under frames [start, stop) -> (n,); NaN without audio.

    An unreadable audio track counts as none (with a warning): the dub never needed it before
    speakers were detected, and `--speaker auto` then dubs the largest face."""
    try:
        decoded = decode_audio_span(video, float(start / fps), float((stop - start) / fps))
    except InputError as exc:
        log.warning("%s; frames %d-%d are tracked as if the video had no audio", exc, start, stop)
        decoded = None
    if decoded is None:
        return np.full(stop - start, np.nan, np.float32)
    samples, rate = decoded
    return frame_energy(samples, rate, fps, stop - start, start)


def source_mel_windows(video: str, fps: Fraction, start: int, stop: int) -> np.ndarray:
    """SyncNet's (80, 64) log-mel windows of the source under frames [j, j + 16) for j from
    MAX_OFFSET frames before `start` to as many after `stop` -> (n + 2K, 80, 64); zeros outside
    the audio."""
    first = start - MAX_OFFSET
    frames = stop - start + 2 * MAX_OFFSET + SYNC_FRAMES
    decoded = decode_audio_span(video, max(first, 0) / float(fps), frames / float(fps), rate=SAMPLE_RATE)
    samples = decoded[0] if decoded is not None else np.zeros(0, np.float32)
    lead = np.zeros(round(max(-first, 0) * SAMPLE_RATE / float(fps)), np.float32)
    mel = log_mel(np.concatenate([lead, samples]))
    return np.stack([mel_window(mel, j) for j in range(stop - start + 2 * MAX_OFFSET)])


@dataclass
class TrackFacesStage:
    """Tracks a chunk's faces and measures its source audio; with `syncnet/` in the weights folder
    (and a 23-26 fps source) also scores who speaks with SyncNet."""

    weights: str
    options: DubOptions
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    _detector: LandmarkDetector | None = field(default=None, init=False, repr=False)
    _sync: SyncScorer | None = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        layout = self._layout()
        folder = layout.face_alignment if layout is not None else Path()
        self._detector = load_landmark_detector(self.options.landmarks, folder)
        if layout is not None and (layout.syncnet / "syncnet.json").is_file():
            self._sync = SyncScorer(SyncNet.from_pretrained(layout.syncnet))

    def _layout(self) -> WeightsLayout | None:
        """The weights; dlib needs none, so `musedub faces --landmarks dlib` runs without a folder."""
        try:
            return ModelStore(self.weights).layout
        except ConfigError:
            if self.options.landmarks == "dlib":
                return None
            raise

    def __call__(self, row: Row) -> Row:
        """Tracks every face of the chunk with `smooth_radius` frames of context each side (at least
        one before, to see a cut at its first frame), so smoothing runs across chunk edges as it
        does inside; the tracker restarts with a full detection per chunk."""
        assert self._detector is not None, "setup() first"
        info = video_info(row)
        start, stop = row["chunk_start"], row["chunk_stop"]
        if info.frame_count != row["frame_count"]:
            raise InputError(f"video {row['video']} changed since it was planned: run the job again")
        options = job_options(row)
        radius = options.smooth_radius
        lo, hi = max(0, start - max(radius, 1)), min(info.frame_count, stop + radius)
        fps = parse_fps(row["fps"])
        tracker = MultiFaceTracker(
            self._detector,
            options.detect_every,
            min_size=options.face_min_size,
            max_faces=options.max_faces,
            gap=gap_frames(fps),
        )
        with FrameReader(info) as reader:
            if info.still:  # one picture shown for the whole audio: track it once, not once per frame
                one = tracker.track(reader.frames([0]), radius)
                cuts = np.zeros(stop - start, bool)
                cuts[0] = start == 0
                faces = SpanFaces(np.repeat(one.landmarks, stop - start, axis=1), cuts)  # (T, n, 68, 2)
            else:
                faces = tracker.track(reader.frames(range(lo, hi)), radius).trimmed(start - lo, stop - lo)
        level = source_level(row["video"], fps, start, stop)
        sync = np.full(faces.landmarks.shape[:2], np.nan, np.float32)  # (T, n)
        if self._sync is not None and syncnet_fits(fps) and faces.tracks and not np.isnan(level).all():
            windows = source_mel_windows(row["video"], fps, start, stop)
            with FrameReader(info) as reader:
                sync = self._sync.scores(reader.frames(range(start, stop)), faces.landmarks, windows, info.height)
        return {**row, "faces": faces.landmarks, "cuts": faces.cuts, "level_db": level, "sync": sync}


@dataclass
class CropStage:
    options: DubOptions
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))

    def setup(self) -> None:
        """Nothing to load: cropping is geometry."""

    def __call__(self, row: Row) -> Row:
        options = job_options(row)
        info = video_info(row)
        landmarks = row["landmarks"]
        n = len(row["source"])
        status = np.full(n, FaceStatus.NO_FACE, np.uint8)
        boxes = np.zeros((n, 4), np.int32)
        crops: list[np.ndarray] = []
        with FrameReader(info) as reader:
            for i, frame in enumerate(reader.frames(row["source"])):
                if np.isnan(landmarks[i]).any():
                    if row["passed"][i]:
                        status[i] = FaceStatus.NOT_CHOSEN
                    continue
                box = crop_box(
                    landmarks[i],
                    info.height,
                    options.version,
                    extra_margin=options.extra_margin,
                    bbox_shift=options.bbox_shift,
                )
                status[i] = face_status(landmarks[i], box, info.width, info.height, options.min_face)
                if status[i] == FaceStatus.OK:
                    assert box is not None
                    boxes[i] = (box.x1, box.y1, box.x2, box.y2)
                    crops.append(crop_face(frame, box))
        stacked = np.stack(crops) if crops else np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        return {**row, "status": status, "boxes": boxes, "crops": stacked}
