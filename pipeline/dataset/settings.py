"""What `musedub preprocess` does to every source, and the key that says two runs agree."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, model_validator

from musedub.models.constants import LandmarkBackend

TRAIN_FPS = Fraction(25)


class PreprocessSettings(BaseModel):
    """The options of `musedub preprocess` (`musedub schema preprocess`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: str = Field(description="weights folder or URI (whisper for the features, face models)")
    landmarks: LandmarkBackend = "face-alignment"
    detect_every: int = Field(5, ge=1, le=250, description="full-frame face detection every N frames")
    smooth_radius: int = Field(2, ge=0, le=25)
    clip_seconds: float = Field(30.0, gt=0, le=600, description="longest clip; clips also end at shot cuts")
    # 1 s: room for 16-frame stage-2 samples and references 5+ frames away
    min_clip_frames: int = Field(25, ge=16, description="shorter runs of usable face frames are dropped")
    min_face: int = Field(150, ge=8, description="frames with a smaller face (px) are dropped (stage 1)")
    stage2_min_face: int = Field(200, ge=8, description="clips whose faces are all this big are stage-2 clips")
    # crops keep the largest dynamic bottom margin; training trims to its draw
    crop_margin: int = Field(20, ge=0, le=100)
    speaking_only: bool = Field(
        False, description="keep only frames where the face speaks in the source's audio (docs/SPEAKERS.md)"
    )
    # 5 min: 10 whole whisper windows (span edges fall on window edges), ten 30 s clips per edge that
    # may cut one; most talking-head sources stay one row as before, a 2-hour film becomes 24 rows
    shard_seconds: float = Field(
        300.0, gt=0, description="a longer source is cut into spans of this length, processed in parallel"
    )
    crops: bool = Field(True, description="store the 256x256 crops (JPEG), so training decodes no video")
    features: bool = Field(True, description="store whisper states per clip")
    jpeg_quality: int = Field(95, ge=1, le=100)
    device: str = "cpu"

    @model_validator(mode="after")
    def _clips_hold_enough_frames(self) -> PreprocessSettings:
        if self.clip_seconds * TRAIN_FPS < self.min_clip_frames:
            frames = self.min_clip_frames
            raise ValueError(f"clip_seconds {self.clip_seconds} holds fewer than min_clip_frames {frames}")
        if self.shard_frames < self.min_clip_frames:
            frames = self.min_clip_frames
            raise ValueError(f"shard_seconds {self.shard_seconds} holds fewer than min_clip_frames {frames}")
        return self

    @property
    def max_clip_frames(self) -> int:
        return int(self.clip_seconds * TRAIN_FPS)

    @property
    def shard_frames(self) -> int:
        return int(self.shard_seconds * TRAIN_FPS)

    def key(self) -> str:
        """Hash of every setting that changes the shards; the weights location only when whisper
        features are stored (landmark models come with the backend's package or release). Not the
        shard length: how a source is cut for parallel work does not make its finished clips stale."""
        fields = self.model_dump()
        fields.pop("device")
        fields.pop("shard_seconds")
        if not self.features:
            fields.pop("weights")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
