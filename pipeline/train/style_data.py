"""Training samples for the style generator: target windows and reference windows of one speaker.

The dataset has no speaker ids; a source (one preprocessed video) stands for its speaker. A
worker streams clip rows and, for each, reads its source's clips table once (landmarks, boxes,
whisper states of every clip, kept while rows of that source come), so references can come from
any clip of the same source. A reference is never the target window itself: it lies in another
clip, or at least `exclusion` frames before or after the target window in its clip. Lip motion is
`mouth_motion` in the box of the crop the renderer paints (the face box down to `margin` px below
the chin, as `dub` crops), so the predictor's output and the renderer's input share one unit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from musedub.infra.errors import ConfigError
from musedub.infra.storage import filesystem
from musedub.models.style_predictor import mouth_motion
from musedub.pipeline.audio.prompts import gather_prompts
from musedub.pipeline.dataset.tables import clip_table_uri, require_dataset, source_uri
from musedub.pipeline.train.data import decode_jpeg, read_clip_rows, trim_margin

SOURCES_KEPT = 2  # sources whose clips a worker keeps (shards list a source's clips together)
SOURCE_COLUMNS = [
    "clip_id",
    "start",
    "frames",
    "height",
    "landmarks",
    "boxes",
    "crop_bottom",
    "whisper",
    "whisper_shape",
]


def dataset_audio_dim(dataset: str) -> int | None:
    """The width of the whisper states a dataset holds (its first source's first clip); None without them."""
    fs, path = filesystem(source_uri(dataset, "clips", require_dataset(dataset)[0]))
    shapes = pq.read_table(path, filesystem=fs, columns=["whisper_shape"]).column("whisper_shape").to_pylist()
    return int(shapes[0][-1]) if shapes and shapes[0] else None


@dataclass(frozen=True)
class Window:
    clip: int  # index into the source's clips
    start: int  # offset in the clip
    length: int


@dataclass
class SpeakerClip:
    clip_id: str
    start: int  # source frame of offset 0 (the frames table's `frame`)
    height: int
    boxes: np.ndarray  # (n, 4) int32 crop box without margin
    crop_bottom: np.ndarray  # (n,) int32
    motion: np.ndarray  # (n, 20, 2) float32 mouth points in units of the rendered crop's box
    whisper: np.ndarray | None  # (2n + 8, L+1, D) float16

    @property
    def n(self) -> int:
        return len(self.motion)

    def prompts(self, start: int, length: int) -> np.ndarray:
        """Whisper prompts of frames [start, start + length) -> (length, 50, D) float32."""
        assert self.whisper is not None, "clips without whisper states are never sampled"
        return gather_prompts(self.whisper, 2 * np.arange(start, start + length)).astype(np.float32)


def free_runs(lengths: list[int], target: Window, exclusion: int) -> list[Window]:
    """Spans of the source's clips a reference may come from: other clips whole, and the target's clip
    outside the target window widened by `exclusion` frames on each side."""
    runs = []
    for clip, n in enumerate(lengths):
        if clip != target.clip:
            if n > 0:
                runs.append(Window(clip, 0, n))
            continue
        before = target.start - exclusion
        after = target.start + target.length + exclusion
        if before > 0:
            runs.append(Window(clip, 0, before))
        if after < n:
            runs.append(Window(clip, after, n - after))
    return runs


def draw_references(
    rng: np.random.Generator, lengths: list[int], target: Window, count: int, length: int, exclusion: int
) -> list[Window]:
    """`count` reference windows of up to `length` frames, each in a free run picked with weight = its
    frames (so every free frame is about equally likely); a run shorter than `length` gives a shorter
    window. Empty when the source has no free frame."""
    runs = free_runs(lengths, target, exclusion)
    if not runs:
        return []
    sizes = np.array([r.length for r in runs], np.float64)
    picks = rng.choice(len(runs), size=count, p=sizes / sizes.sum())
    windows = []
    for pick in picks:
        run = runs[int(pick)]
        size = min(length, run.length)
        windows.append(Window(run.clip, run.start + int(rng.integers(0, run.length - size + 1)), size))
    return windows


def motion_boxes(clip_boxes: np.ndarray, crop_bottom: np.ndarray, margin: int) -> np.ndarray:
    """Face boxes (n, 4) -> the rendered crop's boxes (n, 4): down to `margin` px below the chin, within
    the stored crop (which preprocess keeps inside the frame)."""
    boxes = clip_boxes.astype(np.float32).copy()
    boxes[:, 3] = np.minimum(clip_boxes[:, 3] + margin, crop_bottom)
    return boxes


@dataclass
class PredictorSample:
    audio: np.ndarray  # (T, 50, D) float32 driving prompts
    lips: np.ndarray  # (T, 20, 2) float32 target mouth points
    reference_audio: list[np.ndarray]  # per reference window (L_r, 50, D)
    reference_lips: list[np.ndarray]  # per reference window (L_r, 20, 2)
    target: tuple[str, Window]  # (clip id, window): where it came from
    references: list[tuple[str, Window]]


@dataclass
class RendererSample:
    target: np.ndarray  # (256, 256, 3) uint8 crop down to `margin`
    motion: np.ndarray  # (20, 2) float32 its mouth points
    references: np.ndarray  # (N, 256, 256, 3) uint8 crops of other frames of the speaker
    frame: tuple[str, int]  # (clip id, offset)
    reference_frames: list[tuple[str, int]]


class SpeakerSampler:
    """Draws predictor or renderer samples from clip rows; references from the row's whole source."""

    def __init__(
        self,
        dataset: str,
        kind: str,
        frames: int,
        references: int,
        reference_frames: int,
        exclusion: int,
        margin: int,
        seed: int,
    ) -> None:
        self.dataset = dataset
        self.kind = kind
        self.frames = frames if kind == "predictor" else 1
        self.reference_frames = reference_frames if kind == "predictor" else 1
        self.references = references
        self.exclusion = exclusion
        self.margin = margin
        self.rng = np.random.default_rng(seed)
        self._sources: OrderedDict[str, list[SpeakerClip]] = OrderedDict()
        self._crops: tuple[str, dict[int, bytes]] | None = None

    def source(self, sid: str) -> list[SpeakerClip]:
        """Every clip of a source (all its parts) with whisper states, read once while its rows come."""
        if sid in self._sources:
            self._sources.move_to_end(sid)
            return self._sources[sid]
        fs, path = filesystem(source_uri(self.dataset, "clips", sid))
        table = pq.read_table(path, filesystem=fs, columns=SOURCE_COLUMNS).to_pylist()
        clips = [self._clip(row) for row in table]
        self._sources[sid] = clips
        if len(self._sources) > SOURCES_KEPT:
            self._sources.popitem(last=False)
        return clips

    def _clip(self, row: dict[str, Any]) -> SpeakerClip:
        n = int(row["frames"])
        landmarks = np.asarray(row["landmarks"], np.float32).reshape(n, 68, 2)
        boxes = np.asarray(row["boxes"], np.int32).reshape(n, 4)
        crop_bottom = np.asarray(row["crop_bottom"], np.int32)
        motion = mouth_motion(
            torch.from_numpy(landmarks), torch.from_numpy(motion_boxes(boxes, crop_bottom, self.margin))
        )
        whisper = None
        if row["whisper"] is not None:
            shape = tuple(int(v) for v in row["whisper_shape"])
            whisper = np.frombuffer(row["whisper"], np.float16).reshape(shape)  # (2n + 8, L+1, D)
        return SpeakerClip(
            row["clip_id"], int(row["start"]), int(row["height"]), boxes, crop_bottom, motion.numpy(), whisper
        )

    def _target(self, row: dict[str, Any]) -> tuple[list[SpeakerClip], Window]:
        clips = self.source(row["source_id"])
        index = next((i for i, c in enumerate(clips) if c.clip_id == row["clip_id"]), None)
        if index is None or (self.kind == "predictor" and clips[index].whisper is None):
            raise ConfigError(
                f"clip {row['clip_id']} of {self.dataset} lacks whisper features: preprocess again with --features"
            )
        first = int(self.rng.integers(0, clips[index].n - self.frames + 1))
        return clips, Window(index, first, self.frames)

    def _references(self, clips: list[SpeakerClip], target: Window) -> list[Window]:
        """1 to `references` windows (the count varies, as it does at inference)."""
        usable = [c.n if c.whisper is not None or self.kind == "renderer" else 0 for c in clips]
        count = int(self.rng.integers(1, self.references + 1))
        windows = draw_references(self.rng, usable, target, count, self.reference_frames, self.exclusion)
        if not windows:
            raise ConfigError(
                f"clip {clips[target.clip].clip_id} is all its source holds and leaves no frame for a reference "
                f"outside a {target.length}-frame window (exclusion {self.exclusion}): lower frames or exclusion"
            )
        return windows

    def sample(self, row: dict[str, Any]) -> PredictorSample | RendererSample:
        clips, target = self._target(row)
        windows = self._references(clips, target)
        if self.kind == "predictor":
            clip = clips[target.clip]
            return PredictorSample(
                audio=clip.prompts(target.start, target.length),
                lips=clip.motion[target.start : target.start + target.length],
                reference_audio=[clips[w.clip].prompts(w.start, w.length) for w in windows],
                reference_lips=[clips[w.clip].motion[w.start : w.start + w.length] for w in windows],
                target=(clip.clip_id, target),
                references=[(clips[w.clip].clip_id, w) for w in windows],
            )
        sid = row["source_id"]
        clip = clips[target.clip]
        self._load_crops(sid, clip)
        return RendererSample(
            target=self._crop(sid, clip, target.start),
            motion=clip.motion[target.start],
            references=np.stack([self._crop(sid, clips[w.clip], w.start) for w in windows]),
            frame=(clip.clip_id, target.start),
            reference_frames=[(clips[w.clip].clip_id, w.start) for w in windows],
        )

    def _load_crops(self, sid: str, clip: SpeakerClip) -> None:
        """The target clip's JPEGs, read once while samples come from it."""
        if self._crops is not None and self._crops[0] == clip.clip_id:
            return
        rows = read_clip_rows(
            clip_table_uri(self.dataset, "frames", sid, clip.clip_id), clip.clip_id, ["frame", "crop"]
        )
        if not rows["frame"]:
            raise ConfigError(
                f"clip {clip.clip_id} of {self.dataset} has no stored crops: preprocess again with --crops"
            )
        self._crops = (clip.clip_id, dict(zip(rows["frame"], rows["crop"], strict=True)))

    def _crop(self, sid: str, clip: SpeakerClip, offset: int) -> np.ndarray:
        """One frame's stored crop trimmed to `margin`: (256, 256, 3) uint8; a frame of another clip
        than the target's is read alone (row groups pruned by clip and frame)."""
        frame = clip.start + offset
        if self._crops is not None and self._crops[0] == clip.clip_id:
            jpeg = self._crops[1][frame]
        else:
            fs, path = filesystem(clip_table_uri(self.dataset, "frames", sid, clip.clip_id))
            filters = [("clip_id", "=", clip.clip_id), ("frame", "=", frame)]
            jpeg = pq.read_table(path, filesystem=fs, columns=["crop"], filters=filters).column("crop")[0].as_py()
        box = clip.boxes[offset]
        return trim_margin(
            decode_jpeg(jpeg), int(box[1]), int(box[3]), int(clip.crop_bottom[offset]), self.margin, clip.height
        )
