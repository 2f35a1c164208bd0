"""One source video, or one span of a long one, -> its training clips as Parquet shards (the
preprocess stage).

The same decode and landmark tracking as dubbing, resampled to 25 fps; clips are runs of usable
face frames within a shot, at most `clip_seconds` long. A whole source writes its own marker; a
failing one writes a 'failed' marker (reruns skip it unless asked to retry) and raises: the
adapter records it in the run's errors table, and the other sources go on. A span (spans.py)
reads only its frames (from the planned media index) and the whisper windows around them, writes
its own part file and returns its summary; the driver writes the source's marker from all of them
(span_results.py).

Row in: item_id (= source_id, or `ID:span`), source (URI), source_id, checksum, out, and for a
span its media index, span, spans, start, stop. Row out: the source's (or span's) summary (see
`_summary`).
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
from musedub.models.constants import SAMPLE_RATE
from musedub.models.landmarks import LandmarkDetector, load_landmark_detector
from musedub.models.weights.store import ModelStore
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.audio.voicing import frame_energy, voiced_frames
from musedub.pipeline.core.errors import ErrorRecord
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.dataset.clip_cut import ClipSpan, cut_clips
from musedub.pipeline.dataset.clip_quality import clip_quality
from musedub.pipeline.dataset.settings import TRAIN_FPS, PreprocessSettings
from musedub.pipeline.dataset.source_audio import SourceAudio
from musedub.pipeline.dataset.spans import SPAN, SPANS, START, STOP, resample_25
from musedub.pipeline.dataset.tables import (
    CLIP_COLUMNS,
    CLIP_SCHEMA,
    FRAME_SCHEMA,
    QUALITY_COLUMNS,
    WHOLE,
    clip_id,
    flat,
    remove_source_tables,
    span_part,
    table_uri,
    write_marker,
)
from musedub.pipeline.face.crop_geometry import Box, FaceStatus, crop_box, crop_face, face_status
from musedub.pipeline.face.speaker import speaking_frames
from musedub.pipeline.face.track import FaceTrack, FaceTracker
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import INDEX_KEY, load_index
from musedub.pipeline.media.probe import VideoInfo, probe_video


def source_info(row: Row) -> VideoInfo:
    """The probe planning saved for the row's source, else (a source planning did not probe) a probe."""
    return load_index(row[INDEX_KEY]) if row.get(INDEX_KEY) else probe_video(row["source"], what="source video")


@dataclass(frozen=True)
class Frames:
    """The 25 fps frames a row covers: source frames [first, first + len(ticks)), those that have audio."""

    ticks: np.ndarray  # (n,) constant-rate frame of each
    first: int
    audio: SourceAudio
    span: int | None  # None: the whole source

    @property
    def part(self) -> str:
        return WHOLE if self.span is None else span_part(self.span)


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
    # two actors at least: on 2 cores the half CPU kept for Ray Data would leave one core idle
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0, min_actors=2))
    _detector: LandmarkDetector | None = field(default=None, init=False, repr=False)
    _prompter: AudioPrompter | None = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        store = ModelStore(self.settings.weights)
        self._detector = load_landmark_detector(self.settings.landmarks, store.layout.face_alignment)
        if self.settings.features:
            self._prompter = AudioPrompter(store.load_audio_encoder(self.settings.device))

    def __call__(self, row: Row) -> Row:
        tick = time.perf_counter()
        if SPAN in row:  # the driver finishes the source once all its spans are in
            return {**self._process(row), SPAN: row[SPAN], SPANS: row[SPANS], "elapsed": _since(tick)}
        try:
            summary = self._process(row)
        except Exception as exc:  # the marker says "failed" (reruns skip it); the adapter records why
            remove_source_tables(row["out"], row["source_id"])
            message = ErrorRecord.from_exception(exc, "", row["source_id"], "PreprocessSource").message
            write_marker(row["out"], row["source_id"], failed_summary(row, self.settings, message))
            raise
        summary["elapsed"] = _since(tick)
        write_marker(row["out"], row["source_id"], summary)
        return summary

    def _frames(self, row: Row, info: VideoInfo) -> Frames:
        """The row's frames and audio: a span's from its windows, a whole source's in one decode."""
        ticks = resample_25(info)
        if SPAN in row:
            audio = SourceAudio.around(row["source"], row[START], row[STOP])
            first, stop = row[START], row[STOP]
        else:
            audio = SourceAudio.whole(row["source"])
            first, stop = 0, len(ticks)
        return Frames(ticks[first : max(min(stop, audio.frames()), first)], first, audio, row.get(SPAN))

    def _process(self, row: Row) -> dict[str, Any]:
        assert self._detector is not None, "setup() first"
        info = source_info(row)
        frames = self._frames(row, info)
        n = len(frames.ticks)
        tracker = FaceTracker(self._detector, self.settings.detect_every)
        with FrameReader(info, "source video") as reader:
            track = tracker.track(reader.frames(frames.ticks), self.settings.smooth_radius)
        boxes = face_boxes(track, info, self.settings)
        if self.settings.speaking_only:
            under = frames.audio.under(frames.first, frames.first + n)
            level = frame_energy(under, SAMPLE_RATE, TRAIN_FPS, n, frames.first)
            voiced = voiced_frames(level)
            speaks = speaking_frames(track.landmarks, track.shot, level, TRAIN_FPS, voiced, round(TRAIN_FPS / 2))
            boxes.status[(boxes.status == FaceStatus.OK) & ~speaks] = FaceStatus.NOT_CHOSEN
        spans, dropped = cut_clips(
            boxes.status, track.shot, self.settings.max_clip_frames, self.settings.min_clip_frames
        )
        tables = ("clips", "frames") if self.settings.crops else ("clips",)
        with tempfile.TemporaryDirectory(prefix="musedub-preprocess-") as tmp:
            files = {name: Path(tmp) / f"{name}.parquet" for name in tables}
            self._write_shards(row, info, frames, spans, track, boxes, files)
            if frames.span is None:  # a span leaves the source's other parts alone
                remove_source_tables(row["out"], row["source_id"], keep=tables)
            for name, path in files.items():
                commit_file(path, table_uri(row["out"], name, row["source_id"], frames.part), "dataset shard")
        kept = sum(len(s) for s in spans)
        return _summary(row, self.settings, "ok", clips=len(spans), frames=n, kept=kept, dropped=dropped)

    def _write_shards(
        self,
        row: Row,
        info: VideoInfo,
        frames: Frames,
        spans: list[ClipSpan],
        track: FaceTrack,
        boxes: Boxes,
        files: dict[str, Path],
    ) -> None:
        """Clip by clip into local Parquet files: one clip's crops are the most ever held (bounded memory).
        `spans`, `track` and `boxes` count from the row's first frame."""
        wanted = np.concatenate([np.arange(s.start, s.stop) for s in spans]) if spans else np.zeros(0, np.int64)
        with ExitStack() as stack:
            clip_writer = stack.enter_context(pq.ParquetWriter(files["clips"], CLIP_SCHEMA, compression="zstd"))
            frame_writer, decoded = None, None
            if "frames" in files:
                frame_writer = stack.enter_context(pq.ParquetWriter(files["frames"], FRAME_SCHEMA, compression="zstd"))
                decoded = stack.enter_context(FrameReader(info, "source video")).frames(frames.ticks[wanted])
            for index, span in enumerate(spans):
                clip = clip_id(row["source_id"], index, frames.span)
                crops = None
                if decoded is not None and frame_writer is not None:
                    crops = np.stack([crop_face(next(decoded), boxes.region(i)) for i in range(span.start, span.stop)])
                    frame_writer.write_table(self._frame_rows(clip, span, frames.first, crops))
                values = self._clip_values(row, clip, info, span, frames, track, boxes, crops)
                clip_writer.write_table(pa.table({k: [values[k]] for k in CLIP_COLUMNS}, schema=CLIP_SCHEMA))

    def _clip_values(
        self,
        row: Row,
        clip: str,
        info: VideoInfo,
        span: ClipSpan,
        frames: Frames,
        track: FaceTrack,
        boxes: Boxes,
        crops: np.ndarray | None,
    ) -> dict[str, Any]:
        marks = track.landmarks[span.start : span.stop]  # (n, 68, 2)
        box = boxes.box[span.start : span.stop]  # (n, 4)
        start, stop = frames.first + span.start, frames.first + span.stop  # in the source
        audio = frames.audio.under(start, stop)
        read = "whole" if frames.span is None else "windows"  # a seek decodes a window's first samples apart
        whisper, shape = self._whisper(frames.audio, start, stop, f"{row['checksum']}:{read}")
        quality = clip_quality(marks, box, audio, crops)
        return {
            "source_id": row["source_id"],
            "source": row["source"],
            "clip_id": clip,
            "start": start,
            "stop": stop,
            "frames": len(span),
            "shot": frames.first + span.shot,  # unique in the source: a span holds fewer shots than frames
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

    def _frame_rows(self, clip: str, span: ClipSpan, first: int, crops: np.ndarray) -> pa.Table:
        quality = [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality]
        jpegs = []
        for crop in crops:
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), quality)
            assert ok, "JPEG encoding of a 256x256 crop cannot fail"
            jpegs.append(data.tobytes())
        frames = list(range(first + span.start, first + span.stop))
        return pa.table({"clip_id": [clip] * len(span), "frame": frames, "crop": jpegs}, schema=FRAME_SCHEMA)

    def _whisper(self, audio: SourceAudio, start: int, stop: int, key: str) -> tuple[bytes | None, tuple[int, ...]]:
        """float16 whisper states (2n + 8, L+1, D) of source frames [start, stop) as raw bytes, and their
        shape. `key` names the audio's content and how it was read, so clips of one window encode it once."""
        if self._prompter is None:
            return None, ()
        states, _ = self._prompter.span(audio.read_window, audio.num_samples, TRAIN_FPS, start, stop, key)
        return states.numpy().astype(np.float16).tobytes(), tuple(states.shape)


def _since(tick: float) -> float:
    return round(time.perf_counter() - tick, 3)


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
