"""A speaker's style reference: how they shaped their lips for which sounds, and a few of their faces.

The predictor looks lip shapes up by sound in `audio` and `lips`; the renderer attends to `crops`.
A job's references are made once, on a CPU, before its segments run, and kept as one small file
in its work prefix (one reference per dubbed face), so every segment on any worker reads the same
reference: a batch makes the frames `dub` makes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from musedub.infra.storage import read_bytes, write_bytes_atomic
from musedub.models.style_predictor import mouth_motion
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.audio.windows import SAMPLE_RATE
from musedub.pipeline.face.crop_geometry import Box, crop_face
from musedub.pipeline.media.audio_decode import decode_audio_span
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import VideoInfo

REFERENCE_WINDOWS = 4  # windows the predictor trains with (StyleTrainConfig.references)
WINDOW_FRAMES = 50  # frames per window, as trained (StyleTrainConfig.reference_frames)
REFERENCE_CROPS = 4  # faces the renderer attends to (its training draws 1..4)
MIN_SECONDS = 1.0  # less speaking face than this is too little to borrow a style from
ANY_TRACK = 0  # the key of a reference given by --style-reference: it serves every dubbed face


def minimum_frames(fps: Fraction) -> int:
    return max(1, math.ceil(fps * Fraction(MIN_SECONDS)))


@dataclass(frozen=True)
class StyleReference:
    audio: np.ndarray  # (R, L, 50, D) float32: the speaker's whisper prompts at the reference frames
    lips: np.ndarray  # (R, L, 20, 2) float32: their mouth points, in crop-box units
    mask: np.ndarray  # (R, L) bool: real frames (a short window is zero-padded)
    crops: np.ndarray  # (N, 256, 256, 3) uint8: their face crops


@dataclass(frozen=True)
class ReferenceFrames:
    """Frames of one video where the speaker's face is seen whole (and, where known, speaks)."""

    video: VideoInfo
    frames: np.ndarray  # (m,) int64 constant-rate frames, ascending
    landmarks: np.ndarray  # (m, 68, 2) float32
    boxes: np.ndarray  # (m, 4) int32 the crop box of each (x1, y1, x2, y2), as the dub crops it


def pick_windows(total: int) -> list[np.ndarray]:
    """`total` candidates -> up to R windows of up to L consecutive candidates, one from the middle
    of each of R equal parts, so the reference spans the whole footage rather than its start."""
    windows = []
    for part in np.array_split(np.arange(total), min(REFERENCE_WINDOWS, total)):
        first = max(0, (len(part) - WINDOW_FRAMES) // 2)
        windows.append(part[first : first + WINDOW_FRAMES])
    return windows


def source_prompts(video: VideoInfo, frames: np.ndarray, prompter: AudioPrompter) -> np.ndarray:
    """Whisper prompts of a video's own audio at `frames` (ascending) -> (m, 50, D); only the 30 s
    windows they touch are decoded."""
    num_samples = math.ceil(video.frame_count * SAMPLE_RATE / video.fps)
    window_seconds = 30.0

    def read_window(w: int) -> np.ndarray:
        decoded = decode_audio_span(video.uri, w * window_seconds, window_seconds, "style reference", SAMPLE_RATE)
        return decoded[0] if decoded is not None else np.zeros(0, np.float32)

    parts = []
    # runs of consecutive frames: a new run wherever the step is not 1
    starts = np.concatenate([[0], np.flatnonzero(np.diff(frames) != 1) + 1, [len(frames)]])
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        first, last = int(frames[a]), int(frames[b - 1])
        key = f"style-reference:{video.uri}:{video.identity}"
        parts.append(prompter.for_frames(read_window, num_samples, video.fps, first, last + 1, key))
    return np.concatenate(parts)


def build_reference(sources: Sequence[ReferenceFrames], prompter: AudioPrompter) -> StyleReference:
    """Windows and crops spread over all `sources`' frames -> the reference (deterministic)."""
    entries = [(s, i) for s, source in enumerate(sources) for i in range(len(source.frames))]
    windows = pick_windows(len(entries))
    length = max(len(w) for w in windows)
    audio: np.ndarray | None = None
    lips = np.zeros((len(windows), length, 20, 2), np.float32)
    mask = np.zeros((len(windows), length), bool)
    for r, window in enumerate(windows):
        picked = [entries[k] for k in window]
        for s, source in enumerate(sources):
            rows = np.array([i for i, (src, _) in enumerate(picked) if src == s], np.int64)
            if not len(rows):
                continue
            at = np.array([picked[i][1] for i in rows], np.int64)
            prompts = source_prompts(source.video, source.frames[at], prompter)  # (m, 50, D)
            if audio is None:
                audio = np.zeros((len(windows), length, *prompts.shape[1:]), np.float32)
            audio[r, rows] = prompts
            motion = mouth_motion(torch.from_numpy(source.landmarks[at]), torch.from_numpy(source.boxes[at]).float())
            lips[r, rows] = motion.numpy()
        mask[r, : len(window)] = True
    assert audio is not None, "build_reference needs at least one frame"
    return StyleReference(audio, lips, mask, reference_crops(sources, entries))


def reference_crops(sources: Sequence[ReferenceFrames], entries: list[tuple[int, int]]) -> np.ndarray:
    """REFERENCE_CROPS faces evenly spread over the candidates -> (N, 256, 256, 3) uint8."""
    picks = sorted({int(k) for k in np.linspace(0, len(entries) - 1, REFERENCE_CROPS).round()})
    crops = []
    for s, source in enumerate(sources):
        at = [entries[k][1] for k in picks if entries[k][0] == s]
        if not at:
            continue
        with FrameReader(source.video) as reader:
            for i, frame in zip(at, reader.frames(source.frames[at]), strict=True):
                crops.append(crop_face(frame, Box(*(int(v) for v in source.boxes[i]))))
    return np.stack(crops)


def references_bytes(references: dict[int, StyleReference]) -> bytes:
    arrays = {}
    for track, ref in references.items():
        arrays.update({f"t{track}_{name}": getattr(ref, name) for name in ("audio", "lips", "mask", "crops")})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_references(references: dict[int, StyleReference], uri: str) -> None:
    write_bytes_atomic(uri, references_bytes(references), "style reference")


def read_references(uri: str) -> dict[int, StyleReference]:
    """A job's references by track (ANY_TRACK: one for every face)."""
    with np.load(io.BytesIO(read_bytes(uri, "style reference")), allow_pickle=False) as kept:
        tracks = sorted({int(name[1:].split("_")[0]) for name in kept.files})
        return {
            t: StyleReference(*(kept[f"t{t}_{name}"] for name in ("audio", "lips", "mask", "crops"))) for t in tracks
        }


def describe_references(references: dict[int, StyleReference]) -> dict[str, dict[str, int]]:
    """For the job report: per face (track id, or "shared"), the reference frames and faces used."""
    return {
        ("shared" if t == ANY_TRACK else str(t)): {"frames": int(r.mask.sum()), "faces": len(r.crops)}
        for t, r in sorted(references.items())
    }


def reference_for(references: dict[int, StyleReference], track: int) -> StyleReference:
    """A face's own reference, else the one every face shares (`--style-reference`'s, or the pooled one)."""
    return references.get(track) or references[ANY_TRACK]
