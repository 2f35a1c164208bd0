"""The options of one dubbing job, validated once and logged at its start."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from musedub.models.constants import GeneratorName, LandmarkBackend
from musedub.pipeline.dub.length_policy import LengthPolicy
from musedub.pipeline.face.choice import SPEAKER_HELP, parse_speaker
from musedub.pipeline.media.encode import DEFAULT_CRF, DEFAULT_PRESET

MaskSource = Literal["auto", "parsing", "landmarks"]
# fields only the style generator reads: left out of a MuseTalk job's key
STYLE_FIELDS = frozenset({"style_reference", "style_steps"})
# options added after PLAN_VERSION 3, at the value that keeps what earlier versions did (for depth:
# on 8-bit sources, all there were in tests and catalogues): hashed only when set otherwise, so
# adding them did not make every committed output look stale
LATER_OPTIONS = {"generator": "musetalk", "depth": "source"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class DubOptions(BaseModel):
    """Everything that changes a job's output; weights and device are where it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: GeneratorName = Field("musetalk", description="musetalk, or style (ours; no published weights)")
    style_reference: str | None = Field(
        None,
        max_length=2048,
        description="style: a clip, or a folder of clips, of the speaker; default: the source where the face speaks",
    )
    style_steps: int = Field(4, ge=1, le=50, description="style: DDIM steps per frame (cost grows with each)")
    version: Literal["v1.5", "v1.0"] = "v1.5"
    extra_margin: int = Field(10, ge=0, le=100, description="v1.5: px added below the chin")
    bbox_shift: int = Field(0, ge=-100, le=100, description="v1.0: px the nose point moves down")
    length_policy: LengthPolicy = "cycle"
    depth: Literal["source", "8"] = Field(
        "source", description="output bits: source (10-bit H.264 High 10 from a source of 10 bits or more) or 8"
    )
    crf: int = Field(DEFAULT_CRF, ge=0, le=51, description="x264 quality: lower is better; 16 is visually lossless")
    preset: Literal[X264_PRESETS] = DEFAULT_PRESET  # type: ignore[valid-type]
    mbtree: bool = Field(
        False, description="x264 MB-tree: smaller files, but output bits vary run to run (a resumed batch then differs)"
    )
    landmarks: LandmarkBackend = "face-alignment"
    mask: MaskSource = Field("auto", description="blend mask: BiSeNet parsing when its weights exist, else landmarks")
    detect_every: int = Field(5, ge=1, le=250, description="full-frame face detection every N frames")
    smooth_radius: int = Field(2, ge=0, le=25, description="landmarks averaged over +-N frames of a shot")
    min_face: int = Field(64, ge=8, description="faces whose crop box is smaller than this pass through")
    speaker: str = Field("auto", max_length=64, description=f"which face is dubbed: {SPEAKER_HELP}")
    speaker_min_span: float = Field(
        0.5, ge=0, le=10, description="s: a chosen face is kept at least this long (no flicker between mouths)"
    )
    face_min_size: int = Field(32, ge=8, le=4096, description="px: smaller detected faces are not tracked")
    max_faces: int = Field(24, ge=1, le=200, description="faces followed at once (the largest)")
    still_fps: str = Field("25", description="frame rate given to a still-image video input")
    segment_seconds: float = Field(10.0, gt=0, le=600)
    batch_size: int | None = Field(
        None, ge=1, le=512, description="crops per generator batch; default 64 on a GPU (bench), 8 on a CPU"
    )
    cpu_threads: int = Field(
        2, ge=1, le=256, description="torch CPU threads per worker: float sums, so output bits, depend on it"
    )

    def key_fields(self) -> dict[str, Any]:
        """The options a job's key hashes: all of them, less the style generator's for MuseTalk and
        later options left at the value that keeps earlier output."""
        skip = {name for name, value in LATER_OPTIONS.items() if getattr(self, name) == value}
        if self.generator == "musetalk":
            skip |= STYLE_FIELDS
        return self.model_dump(mode="json", exclude=skip)

    @field_validator("speaker")
    @classmethod
    def _speaker(cls, value: str) -> str:
        parse_speaker(value)
        return value


def job_options(row: dict[str, Any]) -> DubOptions:
    """The options of the job a row belongs to: they travel once, in the row (a batch mixes jobs
    with per-job overrides). A stage's own `options` only choose what `setup()` loads."""
    return DubOptions.model_validate_json(row["options"])
