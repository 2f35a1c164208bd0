"""What `musedub preprocess` does to every source, and the key that says two runs agree."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from fractions import Fraction

from musedub.models.landmarks import LandmarkBackend

TRAIN_FPS = Fraction(25)


@dataclass(frozen=True)
class PreprocessSettings:
    weights: str
    landmarks: LandmarkBackend = "face-alignment"
    detect_every: int = 5
    smooth_radius: int = 2
    clip_seconds: float = 30.0
    min_clip_frames: int = 25  # 1 s: room for 16-frame stage-2 samples and references 5+ frames away
    min_face: int = 150  # stage 1
    stage2_min_face: int = 200
    crop_margin: int = 20  # crops keep the largest dynamic bottom margin; training trims to its draw
    crops: bool = True
    features: bool = True
    jpeg_quality: int = 95
    device: str = "cpu"

    @property
    def max_clip_frames(self) -> int:
        return int(self.clip_seconds * TRAIN_FPS)

    def key(self) -> str:
        """Hash of every setting that changes the shards; the weights location only when whisper
        features are stored (landmark models come with the backend's package or release)."""
        fields = asdict(self)
        fields.pop("device")
        if not self.features:
            fields.pop("weights")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
