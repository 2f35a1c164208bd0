"""Blend + encode a segment: decode its source frames again, paste the generated faces, write H.264.

Row keys read and added: video, still_fps, source (n,), landmarks, status, boxes, generated,
segment_file (local path to write) -> frames_written; generated is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.audio_windows import parse_fps
from pipeline.blend import blend_face, lower_face_mask
from pipeline.crop_geometry import Box, FaceStatus
from pipeline.dub_options import DubOptions
from pipeline.stage import Resources, Row
from pipeline.video_encode import SegmentEncoder
from pipeline.video_frames import FrameReader
from pipeline.video_probe import probe_video


@dataclass
class BlendEncodeStage:
    options: DubOptions
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))

    def setup(self) -> None:
        """Nothing to load: blending is arithmetic and the encoder opens per segment."""

    def __call__(self, row: Row) -> Row:
        info = probe_video(row["video"], parse_fps(row["still_fps"]))
        generated = iter(row["generated"])
        path = Path(row["segment_file"])
        with (
            FrameReader(info) as reader,
            SegmentEncoder(path, info.width, info.height, info.fps, self.options.crf, self.options.preset) as encoder,
        ):
            for i, frame in enumerate(reader.frames(row["source"])):
                if row["status"][i] == FaceStatus.OK:
                    box = Box(*(int(v) for v in row["boxes"][i]))
                    frame = blend_face(frame, next(generated), box, lower_face_mask(row["landmarks"][i], box))
                encoder.write(frame)
        rest = {k: v for k, v in row.items() if k != "generated"}
        return {**rest, "frames_written": encoder.frames}
