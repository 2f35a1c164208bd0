"""One source video -> its training clips as Parquet shards (the preprocess stage).

The same decode and landmark tracking as dubbing, resampled to 25 fps; clips are runs of usable
face frames within a shot, at most `clip_seconds` long. A failing source writes an errors row and
a 'failed' marker, never an exception: one bad video does not stop the dataset.

Row in: source (URI), source_id, checksum, out. Row out: the source's summary (see `_summary`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from infra.errors import MusedubError
from infra.model_store import ModelStore
from models.audio_encoder import WINDOW_SAMPLES
from models.landmarks import LandmarkDetector, load_landmark_detector
from pipeline.audio_decode import decode_audio_16k_mono
from pipeline.audio_prompts import AudioPrompter
from pipeline.audio_windows import video_frame_count
from pipeline.clip_cut import ClipSpan, cut_clips
from pipeline.clip_quality import SAMPLES_PER_FRAME, clip_quality
from pipeline.crop_geometry import Box, FaceStatus, crop_box, crop_face, face_status
from pipeline.dataset_tables import flat, remove_source_tables, table_uri, write_marker, write_table
from pipeline.face_track import FaceTrack, FaceTracker
from pipeline.preprocess_settings import TRAIN_FPS, PreprocessSettings
from pipeline.stage import Resources, Row
from pipeline.video_frames import FrameReader
from pipeline.video_probe import VideoInfo, probe_video

log = logging.getLogger(__name__)


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
        except MusedubError as exc:
            summary = self._failed(row, str(exc))
        except Exception as exc:  # a bug on one source must not stop the dataset; keep its type
            log.exception("preprocess failed on %s", row["source"])
            summary = self._failed(row, f"{type(exc).__name__}: {exc}")
        summary["elapsed"] = round(time.perf_counter() - tick, 3)
        write_marker(row["out"], row["source_id"], summary)
        return summary

    def _failed(self, row: Row, message: str) -> dict[str, Any]:
        remove_source_tables(row["out"], row["source_id"])
        errors = pa.table(
            {
                "source_id": [row["source_id"]],
                "source": [row["source"]],
                "checksum": [row["checksum"]],
                "error": [message],
            }
        )
        write_table(table_uri(row["out"], "errors", row["source_id"]), errors)
        return _summary(row, self.settings, "failed", error=message)

    def _process(self, row: Row) -> dict[str, Any]:
        assert self._detector is not None, "setup() first"
        info = probe_video(row["source"], what="source video")
        samples = decode_audio_16k_mono(row["source"], "source video's audio")
        ticks = resample_25(info)[: video_frame_count(len(samples), TRAIN_FPS)]  # frames that have audio
        tracker = FaceTracker(self._detector, self.settings.detect_every)
        with FrameReader(info, "source video") as reader:
            track = tracker.track(reader.frames(ticks), self.settings.smooth_radius)
        boxes = face_boxes(track, info, self.settings)
        spans, dropped = cut_clips(
            boxes.status, track.shot, self.settings.max_clip_frames, self.settings.min_clip_frames
        )
        crops = self._crops(info, ticks, spans, boxes) if self.settings.crops else None
        clips = self._clip_table(row, info, spans, track, boxes, samples, crops)
        keep = ("clips", "frames") if crops is not None else ("clips",)
        remove_source_tables(row["out"], row["source_id"], keep=keep)
        write_table(table_uri(row["out"], "clips", row["source_id"]), clips)
        if crops is not None:
            write_table(table_uri(row["out"], "frames", row["source_id"]), self._frame_table(row, spans, crops))
        kept = sum(len(s) for s in spans)
        return _summary(row, self.settings, "ok", clips=len(spans), frames=len(ticks), kept=kept, dropped=dropped)

    def _crops(self, info: VideoInfo, ticks: np.ndarray, spans: list[ClipSpan], boxes: Boxes) -> list[np.ndarray]:
        """Per clip, its (n, 256, 256, 3) crops down to the largest dynamic margin, decoded in one pass."""
        wanted = np.concatenate([np.arange(s.start, s.stop) for s in spans]) if spans else np.zeros(0, np.int64)
        out = []
        with FrameReader(info, "source video") as reader:
            frames = reader.frames(ticks[wanted])
            for span in spans:
                stack = []
                for i in range(span.start, span.stop):
                    x1, y1, x2, _ = boxes.box[i]
                    region = Box(int(x1), int(y1), int(x2), int(boxes.crop_bottom[i]))
                    stack.append(crop_face(next(frames), region))
                out.append(np.stack(stack))
        return out

    def _clip_table(
        self,
        row: Row,
        info: VideoInfo,
        spans: list[ClipSpan],
        track: FaceTrack,
        boxes: Boxes,
        samples: np.ndarray,
        crops: list[np.ndarray] | None,
    ) -> pa.Table:
        columns: dict[str, list] = {name: [] for name in CLIP_COLUMNS}
        for index, span in enumerate(spans):
            marks = track.landmarks[span.start : span.stop]  # (n, 68, 2)
            box = boxes.box[span.start : span.stop]  # (n, 4)
            audio = samples[span.start * SAMPLES_PER_FRAME : span.stop * SAMPLES_PER_FRAME]
            whisper, shape = self._whisper(samples, span)
            quality = clip_quality(marks, box, audio, crops[index] if crops is not None else None)
            values: dict[str, Any] = {
                "source_id": row["source_id"],
                "source": row["source"],
                "clip_id": f"{row['source_id']}-{index:04d}",
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
            for name in CLIP_COLUMNS:
                columns[name].append(values[name])
        return pa.table(columns, schema=CLIP_SCHEMA)

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

    def _frame_table(self, row: Row, spans: list[ClipSpan], crops: list[np.ndarray]) -> pa.Table:
        clip_ids, frames, jpegs = [], [], []
        quality = [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality]
        for index, (span, stack) in enumerate(zip(spans, crops, strict=True)):
            for offset, crop in enumerate(stack):
                ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), quality)
                assert ok, "JPEG encoding of a 256x256 crop cannot fail"
                clip_ids.append(f"{row['source_id']}-{index:04d}")
                frames.append(span.start + offset)
                jpegs.append(data.tobytes())
        return pa.table(
            {"clip_id": clip_ids, "frame": pa.array(frames, pa.int32()), "crop": pa.array(jpegs, pa.binary())}
        )


QUALITY_COLUMNS = ("face_min_px", "face_median_px", "jitter", "mouth_motion", "speech_fraction", "sharpness")
CLIP_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("source", pa.string()),
        ("clip_id", pa.string()),
        ("start", pa.int32()),
        ("stop", pa.int32()),
        ("frames", pa.int32()),
        ("shot", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("landmarks", pa.list_(pa.float32())),  # (n, 68, 2) in source pixels
        ("boxes", pa.list_(pa.int32())),  # (n, 4) crop box without bottom margin
        ("crop_bottom", pa.list_(pa.int32())),  # (n,) bottom edge of the stored crop
        ("audio", pa.list_(pa.float32())),  # (n * 640,) 16 kHz mono
        ("whisper", pa.binary()),  # float16 (2n + 8, L+1, D) or null
        ("whisper_shape", pa.list_(pa.int32())),
        ("stage2_ok", pa.bool_()),
        ("flags", pa.list_(pa.string())),
        *[(name, pa.float64()) for name in QUALITY_COLUMNS],
    ]
)
CLIP_COLUMNS = tuple(CLIP_SCHEMA.names)


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
