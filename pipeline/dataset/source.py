"""One source video -> its training clips as Parquet shards (the preprocess stage).

The same decode and landmark tracking as dubbing, resampled to 25 fps; clips are runs of usable
face frames within a shot, at most `clip_seconds` long. A failing source writes a 'failed' marker
(reruns skip it unless asked to retry) and raises: the adapter records it in the run's errors
table, and the other sources go on.

Row in: item_id (= source_id), source (URI), source_id, checksum, out. Row out: the source's
summary (see `_summary`).
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from musedub.infra.storage import commit_file
from musedub.models.audio_encoder import SAMPLE_RATE, WINDOW_SAMPLES
from musedub.models.landmarks import LandmarkDetector, load_landmark_detector
from musedub.models.weights.store import ModelStore
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.audio.voicing import frame_energy, voiced_frames
from musedub.pipeline.audio.windows import video_frame_count
from musedub.pipeline.core.errors import ErrorRecord
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.dataset.clip_cut import ClipSpan, cut_clips
from musedub.pipeline.dataset.clip_quality import SAMPLES_PER_FRAME, clip_quality
from musedub.pipeline.dataset.settings import TRAIN_FPS, PreprocessSettings
from musedub.pipeline.dataset.tables import (
    CLIP_COLUMNS,
    CLIP_SCHEMA,
    FRAME_SCHEMA,
    QUALITY_COLUMNS,
    flat,
    remove_source_tables,
    table_uri,
    write_marker,
)
from musedub.pipeline.face.crop_geometry import Box, FaceStatus, crop_box, crop_face, face_status
from musedub.pipeline.face.speaker import speaking_frames
from musedub.pipeline.face.track import FaceTrack, FaceTracker
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import VideoInfo, probe_video


def resample_25(info: VideoInfo) -> np.ndarray:
    """Constant-rate frame shown at each 25 fps tick: j -> floor(j * fps / 25), (M,) int64."""
    fps = info.fps
    count = info.frame_count * TRAIN_FPS.numerator * fps.denominator // (fps.numerator * TRAIN_FPS.denominator)
    ticks = np.arange(max(count, 1), dtype=np.int64)
    return np.minimum(ticks * fps.numerator // (TRAIN_FPS * fps.denominator), info.frame_count - 1).astype(np.int64)


@dataclass
class Boxes:
    """Per 25 fps frame: status, the crop box without margin (x1 y1 x2 y2) and the stored crop's bottom."""

    status: np.ndarray  # (N,) uint8 FaceStatus
    box: np.ndarray  # (N, 4) int32
    crop_bottom: np.ndarray  # (N,) int32

    def region(self, i: int) -> Box:
        """What frame i's stored crop covers: its box down to the largest dynamic margin."""
        x1, y1, x2, _ = (int(v) for v in self.box[i])
        return Box(x1, y1, x2, int(self.crop_bottom[i]))


def face_boxes(track: FaceTrack, info: VideoInfo, settings: PreprocessSettings) -> Boxes:
    n = len(track)
    out = Boxes(np.full(n, FaceStatus.NO_FACE, np.uint8), np.zeros((n, 4), np.int32), np.zeros(n, np.int32))
    for i in np.flatnonzero(track.found):
        marks = track.landmarks[i]
        box = crop_box(marks, info.height, "v1.5", extra_margin=0)
        out.status[i] = face_status(marks, box, info.width, info.height, settings.min_face)
        if box is not None:
            out.box[i] = (box.x1, box.y1, box.x2, box.y2)
            out.crop_bottom[i] = min(box.y2 + settings.crop_margin, info.height)
    return out


@dataclass
class PreprocessSourceStage:
    settings: PreprocessSettings
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    _detector: LandmarkDetector | None = field(default=None, init=False, repr=False)
    _prompter: AudioPrompter | None = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        store = ModelStore(self.settings.weights)
        self._detector = load_landmark_detector(self.settings.landmarks, store.layout.face_alignment)
        if self.settings.features:
            self._prompter = AudioPrompter(store.load_audio_encoder(self.settings.device))

    def __call__(self, row: Row) -> Row:
        tick = time.perf_counter()
        try:
            summary = self._process(row)
        except Exception as exc:  # the marker says "failed" (reruns skip it); the adapter records why
            remove_source_tables(row["out"], row["source_id"])
            message = ErrorRecord.from_exception(exc, "", row["source_id"], "PreprocessSource").message
            write_marker(row["out"], row["source_id"], failed_summary(row, self.settings, message))
            raise
        summary["elapsed"] = round(time.perf_counter() - tick, 3)
        write_marker(row["out"], row["source_id"], summary)
        return summary

    def _process(self, row: Row) -> dict[str, Any]:
        assert self._detector is not None, "setup() first"
        info = probe_video(row["source"], what="source video")
        samples = decode_audio_16k_mono(row["source"], "source video's audio")
        ticks = resample_25(info)[: video_frame_count(len(samples), TRAIN_FPS)]  # frames that have audio
        tracker = FaceTracker(self._detector, self.settings.detect_every)
        with FrameReader(info, "source video") as reader:
            track = tracker.track(reader.frames(ticks), self.settings.smooth_radius)
        boxes = face_boxes(track, info, self.settings)
        if self.settings.speaking_only:
            level = frame_energy(samples, SAMPLE_RATE, TRAIN_FPS, len(ticks))
            voiced = voiced_frames(level)
            speaks = speaking_frames(track.landmarks, track.shot, level, TRAIN_FPS, voiced, round(TRAIN_FPS / 2))
            boxes.status[(boxes.status == FaceStatus.OK) & ~speaks] = FaceStatus.NOT_CHOSEN
        spans, dropped = cut_clips(
            boxes.status, track.shot, self.settings.max_clip_frames, self.settings.min_clip_frames
        )
        tables = ("clips", "frames") if self.settings.crops else ("clips",)
        with tempfile.TemporaryDirectory(prefix="musedub-preprocess-") as tmp:
            files = {name: Path(tmp) / f"{name}.parquet" for name in tables}
            self._write_shards(row, info, ticks, spans, track, boxes, samples, files)
            remove_source_tables(row["out"], row["source_id"], keep=tables)
            for name, path in files.items():
                commit_file(path, table_uri(row["out"], name, row["source_id"]), "dataset shard")
        kept = sum(len(s) for s in spans)
        return _summary(row, self.settings, "ok", clips=len(spans), frames=len(ticks), kept=kept, dropped=dropped)

    def _write_shards(
        self,
        row: Row,
        info: VideoInfo,
        ticks: np.ndarray,
        spans: list[ClipSpan],
        track: FaceTrack,
        boxes: Boxes,
        samples: np.ndarray,
        files: dict[str, Path],
    ) -> None:
        """Clip by clip into local Parquet files: one clip's crops are the most ever held (bounded memory)."""
        wanted = np.concatenate([np.arange(s.start, s.stop) for s in spans]) if spans else np.zeros(0, np.int64)
        with ExitStack() as stack:
            clip_writer = stack.enter_context(pq.ParquetWriter(files["clips"], CLIP_SCHEMA, compression="zstd"))
            frame_writer, frames = None, None
            if "frames" in files:
                frame_writer = stack.enter_context(pq.ParquetWriter(files["frames"], FRAME_SCHEMA, compression="zstd"))
                frames = stack.enter_context(FrameReader(info, "source video")).frames(ticks[wanted])
            for index, span in enumerate(spans):
                clip_id = f"{row['source_id']}-{index:04d}"
                crops = None
                if frames is not None and frame_writer is not None:
                    crops = np.stack([crop_face(next(frames), boxes.region(i)) for i in range(span.start, span.stop)])
                    frame_writer.write_table(self._frame_rows(clip_id, span, crops))
                values = self._clip_values(row, clip_id, info, span, track, boxes, samples, crops)
                clip_writer.write_table(pa.table({k: [values[k]] for k in CLIP_COLUMNS}, schema=CLIP_SCHEMA))

    def _clip_values(
        self,
        row: Row,
        clip_id: str,
        info: VideoInfo,
        span: ClipSpan,
        track: FaceTrack,
        boxes: Boxes,
        samples: np.ndarray,
        crops: np.ndarray | None,
    ) -> dict[str, Any]:
        marks = track.landmarks[span.start : span.stop]  # (n, 68, 2)
        box = boxes.box[span.start : span.stop]  # (n, 4)
        audio = samples[span.start * SAMPLES_PER_FRAME : span.stop * SAMPLES_PER_FRAME]
        whisper, shape = self._whisper(samples, span)
        quality = clip_quality(marks, box, audio, crops)
        return {
            "source_id": row["source_id"],
            "source": row["source"],
            "clip_id": clip_id,
            "start": span.start,
            "stop": span.stop,
            "frames": len(span),
            "shot": span.shot,
            "width": info.width,
            "height": info.height,
            "landmarks": flat(marks, np.float32),
            "boxes": flat(box, np.int32),
            "crop_bottom": flat(boxes.crop_bottom[span.start : span.stop], np.int32),
            "audio": flat(audio, np.float32),
            "whisper": whisper,
            "whisper_shape": list(shape),
            "stage2_ok": quality.face_min_px >= self.settings.stage2_min_face,
            "flags": quality.flags(self.settings.stage2_min_face),
            **{k: getattr(quality, k) for k in QUALITY_COLUMNS},
        }

    def _frame_rows(self, clip_id: str, span: ClipSpan, crops: np.ndarray) -> pa.Table:
        quality = [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality]
        jpegs = []
        for crop in crops:
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), quality)
            assert ok, "JPEG encoding of a 256x256 crop cannot fail"
            jpegs.append(data.tobytes())
        frames = list(range(span.start, span.stop))
        return pa.table({"clip_id": [clip_id] * len(span), "frame": frames, "crop": jpegs}, schema=FRAME_SCHEMA)

    def _whisper(self, samples: np.ndarray, span: ClipSpan) -> tuple[bytes | None, tuple[int, ...]]:
        """float16 whisper states (2n + 8, L+1, D) of the clip's frames as raw bytes, and their shape."""
        if self._prompter is None:
            return None, ()
        states, _ = self._prompter.span(
            lambda w: samples[w * WINDOW_SAMPLES : (w + 1) * WINDOW_SAMPLES],
            len(samples),
            TRAIN_FPS,
            span.start,
            span.stop,
        )
        return states.numpy().astype(np.float16).tobytes(), tuple(states.shape)


def failed_summary(row: Row, settings: PreprocessSettings, error: str) -> dict[str, Any]:
    return _summary(row, settings, "failed", error=error)


def _summary(row: Row, settings: PreprocessSettings, status: str, **counts: Any) -> dict[str, Any]:
    dropped = counts.get("dropped", {})
    return {
        "source": row["source"],
        "source_id": row["source_id"],
        "checksum": row["checksum"],
        "settings": settings.key(),
        "status": status,
        "error": counts.get("error", ""),
        "clips": counts.get("clips", 0),
        "frames": counts.get("frames", 0),
        "kept": counts.get("kept", 0),
        "dropped": json.dumps(dropped, sort_keys=True),
    }
