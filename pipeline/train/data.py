"""Training samples from preprocessed clips: consecutive target frames, SIS references, prompts, mel.

Workers stream clip rows (Ray Data shards of `OUT/clips`) and draw samples from each; the crops
of a clip are read from its source's frames shard (row groups pruned by clip id), never decoded
from video. Dynamic margin sampling trims the stored crop (bottom margin 20 px) to the drawn
margin and resizes it back to 256, which matches cropping at that margin up to resampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq

from musedub.infra.errors import ConfigError
from musedub.infra.storage import filesystem
from musedub.models.constants import CROP_SIZE
from musedub.pipeline.audio.log_mel import log_mel, mel_window
from musedub.pipeline.audio.prompts import gather_prompts
from musedub.pipeline.dataset.tables import clip_table_uri

MOUTH = slice(48, 68)
MOUTH_PAD = 0.15  # of the mouth box's size, each side


@dataclass
class Sample:
    targets: np.ndarray  # (T, 256, 256, 3) uint8
    references: np.ndarray  # (T, 256, 256, 3) uint8
    prompts: np.ndarray  # (T, 50, D) float32
    mouths: np.ndarray  # (T, 4) int32 mouth box x1 y1 x2 y2 in the target crop
    mel: np.ndarray  # (80, 64) float32 under the T frames (T = 16 in stage 2)
    first: int  # offset of the first target frame in its clip


def read_clip_rows(uri: str, clip_id: str, columns: list[str]) -> dict[str, list]:
    """Rows of one clip from a frames/sis shard, reading only row groups that may hold it."""
    fs, path = filesystem(uri)
    data = pq.read_table(path, filesystem=fs, columns=columns, filters=[("clip_id", "=", clip_id)])
    return data.to_pydict()


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def trim_margin(crop: np.ndarray, y1: int, box_bottom: int, crop_bottom: int, margin: int, height: int) -> np.ndarray:
    """A crop stored down to `crop_bottom` -> the crop down to box_bottom + margin, at 256x256."""
    bottom = min(box_bottom + margin, height, crop_bottom)
    rows = int(np.clip(round(CROP_SIZE * (bottom - y1) / max(crop_bottom - y1, 1)), 1, CROP_SIZE))
    if rows == CROP_SIZE:
        return crop
    return cv2.resize(crop[:rows], (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LANCZOS4)


def mouth_box(landmarks: np.ndarray, box: np.ndarray, bottom: int) -> np.ndarray:
    """Mouth landmarks (68, 2) in frame px -> padded mouth box in the 256 crop of [box, bottom], (4,)."""
    scale = np.array([CROP_SIZE / max(box[2] - box[0], 1), CROP_SIZE / max(bottom - box[1], 1)], np.float32)
    points = (landmarks[MOUTH] - box[:2]) * scale  # (20, 2)
    lo, hi = points.min(0), points.max(0)
    pad = (hi - lo) * MOUTH_PAD + 2
    x1, y1 = np.clip(lo - pad, 0, CROP_SIZE - 2)
    x2, y2 = np.clip(hi + pad, (x1 + 2, y1 + 2), CROP_SIZE)
    return np.array([x1, y1, x2, y2], np.int32)


class ClipSampler:
    """Draws samples of `frames` consecutive frames from clip rows; one per call."""

    def __init__(
        self, dataset: str, frames: int, margins: tuple[float, float, int], seed: int, references: bool = True
    ) -> None:
        self.dataset = dataset
        self.frames = frames
        self.references = references
        self.margin_mean, self.margin_std, self.margin_max = margins
        self.rng = np.random.default_rng(seed)
        self._clip: tuple[str, dict[str, Any]] | None = None

    def _margin(self) -> int:
        return int(np.clip(round(self.rng.normal(self.margin_mean, self.margin_std)), 0, self.margin_max))

    def current(self) -> dict[str, Any]:
        """The clip the last sample came from (its arrays, crops and mel)."""
        assert self._clip is not None, "sample() first"
        return self._clip[1]

    def _load(self, row: dict[str, Any]) -> dict[str, Any]:
        """Arrays of a clip row plus its crops and SIS candidates, kept while samples come from it."""
        if self._clip is not None and self._clip[0] == row["clip_id"]:
            return self._clip[1]
        n = int(row["frames"])
        sid = row["source_id"]
        crops = read_clip_rows(
            clip_table_uri(self.dataset, "frames", sid, row["clip_id"]), row["clip_id"], ["frame", "crop"]
        )
        sis = (
            read_clip_rows(
                clip_table_uri(self.dataset, "sis", sid, row["clip_id"]), row["clip_id"], ["frame", "candidates"]
            )
            if self.references
            else {"frame": [], "candidates": []}
        )
        if row["whisper"] is None or not crops["frame"]:
            raise ConfigError(
                f"clip {row['clip_id']} of {self.dataset} lacks stored crops or whisper features: "
                "preprocess again with --crops --features (the defaults)"
            )
        by_frame = dict(zip(crops["frame"], crops["crop"], strict=True))
        candidates = dict(zip(sis["frame"], sis["candidates"], strict=True))
        start = int(row["start"])
        shape = tuple(int(v) for v in row["whisper_shape"])
        clip = {
            "n": n,
            "height": int(row["height"]),
            "landmarks": np.asarray(row["landmarks"], np.float32).reshape(n, 68, 2),
            "boxes": np.asarray(row["boxes"], np.int32).reshape(n, 4),
            "crop_bottom": np.asarray(row["crop_bottom"], np.int32),
            "jpegs": [by_frame[start + i] for i in range(n)],
            "candidates": [np.asarray(candidates.get(start + i, []), np.int64) for i in range(n)],
            "whisper": np.frombuffer(row["whisper"], np.float16).reshape(shape),  # (2n + 8, L+1, D)
            "mel": log_mel(np.asarray(row["audio"], np.float32)),
        }
        self._clip = (row["clip_id"], clip)
        return clip

    def _crop(self, clip: dict[str, Any], i: int, margin: int) -> np.ndarray:
        box = clip["boxes"][i]
        return trim_margin(
            decode_jpeg(clip["jpegs"][i]), int(box[1]), int(box[3]), int(clip["crop_bottom"][i]), margin, clip["height"]
        )

    def _reference(self, clip: dict[str, Any], i: int) -> int:
        options = clip["candidates"][i]
        if len(options):
            return int(self.rng.choice(options))
        others = np.delete(np.arange(clip["n"]), i)  # a clip too short for SIS: any other frame
        return int(self.rng.choice(others))

    def _references(self, clip: dict[str, Any], offsets: np.ndarray, margin: int) -> np.ndarray:
        """A SIS reference crop per target frame, (T, 256, 256, 3); empty when references are off."""
        if not self.references:
            return np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        return np.stack([self._crop(clip, self._reference(clip, int(i)), margin) for i in offsets])

    def sample(self, row: dict[str, Any]) -> Sample:
        clip = self._load(row)
        first = int(self.rng.integers(0, clip["n"] - self.frames + 1))
        offsets = np.arange(first, first + self.frames)
        target_margin, reference_margin = self._margin(), self._margin()
        bottoms = np.minimum(clip["boxes"][offsets, 3] + target_margin, clip["crop_bottom"][offsets])
        return Sample(
            targets=np.stack([self._crop(clip, int(i), target_margin) for i in offsets]),
            references=self._references(clip, offsets, reference_margin),
            prompts=gather_prompts(clip["whisper"], 2 * offsets).astype(np.float32),
            mouths=np.stack(
                [
                    mouth_box(clip["landmarks"][i], clip["boxes"][i], int(b))
                    for i, b in zip(offsets, bottoms, strict=True)
                ]
            ),
            mel=mel_window(clip["mel"], first),
            first=first,
        )


def collate(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Samples -> arrays with a leading batch axis: targets (B, T, 256, 256, 3), ..."""
    return {name: np.stack([getattr(s, name) for s in samples]) for name in Sample.__dataclass_fields__}
