"""`musedub faces`: the tracks of a video as `dub` sees them, so an editor can pick one.

It runs the same chunked tracking and the same choice as a dub with the same options, so a
track's id here is the id `--speaker track:N` means.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from musedub.pipeline.audio.voicing import runs
from musedub.pipeline.dub.face_stages import TrackFacesStage, require_a_face
from musedub.pipeline.dub.job_faces import choose_in_video
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import track_chunks
from musedub.pipeline.face.choice import FaceChoice
from musedub.pipeline.media.frame_rate import parse_fps
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import remember
from musedub.pipeline.media.probe import VideoInfo, probe_video

log = logging.getLogger(__name__)
THUMB = 160  # px, a contact sheet cell
COLUMNS = 6


@dataclass
class FacesListing:
    info: VideoInfo
    choice: FaceChoice

    def rows(self) -> list[dict[str, Any]]:
        """One row per track: id, shot, frame span, seconds, mean face height, spans it speaks in."""
        fps = self.info.fps
        rows = []
        for t in self.choice.tracks.values():
            row: dict[str, Any] = {
                "track": t.id,
                "shot": int(t.shot),
                "frames": [int(t.start), int(t.stop)],
                "seconds": [round(float(t.start / fps), 2), round(float(t.stop / fps), 2)],
                "seen_frames": int(t.seen.sum()),
                "mean_height_px": round(float(t.sizes()[t.seen].mean()), 1),
            }
            scores = self.choice.scores.get(t.id)
            if scores is not None:
                row["speaking"] = _speaking_spans(scores >= self.choice.threshold, scores, t.start, fps)
            rows.append(row)
        return rows

    def table(self) -> str:
        lines = [f"{'track':>5}  {'shot':>4}  {'frames':>13}  {'seconds':>13}  {'height':>6}  speaking (s: mean score)"]
        for row in self.rows():
            speaking = row.get("speaking")
            said = (
                ", ".join(f"{a:.2f}-{b:.2f}: {score:.2f}" for a, b, score in speaking)
                if speaking
                else ("-" if speaking is not None else "(no speaking score: the source has no audio)")
            )
            a, b = row["frames"]
            sa, sb = row["seconds"]
            lines.append(
                f"{row['track']:>5}  {row['shot']:>4}  {f'{a}-{b}':>13}  {f'{sa:.2f}-{sb:.2f}':>13}  "
                f"{row['mean_height_px']:>6.0f}  {said}"
            )
        return "\n".join(lines)

    def contact_sheet(self) -> np.ndarray:
        """RGB image: a thumbnail per track (its face in the middle frame it is seen), id drawn on it."""
        tracks = list(self.choice.tracks.values())
        middle = {t.id: int(t.start + np.flatnonzero(t.seen)[len(np.flatnonzero(t.seen)) // 2]) for t in tracks}
        frames = sorted(set(middle.values()))
        with FrameReader(self.info) as reader:
            decoded = dict(zip(frames, reader.frames(frames), strict=True))
        rows = max(1, -(-len(tracks) // COLUMNS))
        sheet = np.full((rows * THUMB, min(len(tracks), COLUMNS) * THUMB or THUMB, 3), 32, np.uint8)
        for k, t in enumerate(tracks):
            frame = decoded[middle[t.id]]
            x1, y1, x2, y2 = t.box(middle[t.id])
            pad = 0.35 * max(x2 - x1, y2 - y1)
            h, w = frame.shape[:2]
            a, b = int(max(y1 - pad, 0)), int(min(y2 + pad, h))
            c, d = int(max(x1 - pad, 0)), int(min(x2 + pad, w))
            thumb = cv2.resize(frame[a:b, c:d], (THUMB, THUMB), interpolation=cv2.INTER_AREA)
            cv2.rectangle(thumb, (0, 0), (46, 30), (0, 0, 0), -1)
            cv2.putText(thumb, str(t.id), (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 0), 2, cv2.LINE_AA)
            r, col = divmod(k, COLUMNS)
            sheet[r * THUMB : (r + 1) * THUMB, col * THUMB : (col + 1) * THUMB] = thumb
        return sheet


def _speaking_spans(speaks: np.ndarray, scores: np.ndarray, start: int, fps: Any) -> list[tuple[float, float, float]]:
    """(start s, stop s, mean score) of each run of frames that speak."""
    return [
        (round(float((start + a) / fps), 2), round(float((start + b) / fps), 2), round(float(scores[a:b].mean()), 3))
        for a, b, speaking in runs(speaks)
        if speaking
    ]


def list_faces(video: str, options: DubOptions, weights: str) -> FacesListing:
    """Track every face of `video` chunk by chunk, as `dub` would, and score who speaks."""
    info = probe_video(video, parse_fps(options.still_fps))
    key = f"faces-{uuid.uuid4()}"
    remember(key, info)
    stage = TrackFacesStage(weights, options)
    stage.setup()
    chunks = []
    started = time.perf_counter()
    base = {"job_key": key, "video": video, "fps": str(info.fps), "still_fps": options.still_fps}
    for start, stop in track_chunks(info.frame_count, info.fps, options.segment_seconds):
        row = {**base, "options": options.model_dump_json(), "chunk_start": start, "chunk_stop": stop}
        chunks.append(stage({**row, "frame_count": info.frame_count}))
        rate = stop / max(time.perf_counter() - started, 1e-6)
        log.info("faces: frames %d-%d of %d tracked (%.1f frames/s)", start, stop, info.frame_count, rate)
    choice = choose_in_video(chunks, options, info)
    require_a_face(video, len(choice.tracks))
    return FacesListing(info, choice)
