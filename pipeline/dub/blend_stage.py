"""Blend + encode a segment: decode its source frames again, paste the generated faces, write H.264.

Row keys read and added: video, still_fps, source (n,), landmarks, status, boxes, generated,
segment_file (path or URI, published only when whole) -> frames_written; generated is dropped.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musedub.infra.errors import ConfigError
from musedub.infra.storage import commit_file
from musedub.models.face_parsing import FaceParser
from musedub.models.weights.store import ModelStore
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.dub.options import DubOptions, job_options
from musedub.pipeline.face.blend import blend_face, feathered_lower_half, landmark_region
from musedub.pipeline.face.crop_geometry import Box, FaceStatus, paste_square
from musedub.pipeline.face.parsing_mask import jaw_region, parser_input, region_in_box
from musedub.pipeline.media.encode import SegmentEncoder
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import video_info


def chosen_mask(options: DubOptions, weights: str) -> str:
    """'parsing' when the options allow it and the parser's file exists, else 'landmarks'."""
    if options.mask == "landmarks":
        return "landmarks"
    layout = ModelStore(weights).layout
    if layout.face_parser.is_file():
        return "parsing"
    if options.mask == "parsing":
        raise ConfigError(
            f"--mask parsing needs {layout.face_parser}: fetch the BiSeNet weights into it or use --mask auto|landmarks"
        )
    return "landmarks"


@dataclass
class BlendEncodeStage:
    options: DubOptions
    weights: str
    device: str = "cpu"
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    parser: FaceParser | None = field(default=None, init=False)

    @property
    def mask_source(self) -> str:
        return "landmarks" if self.parser is None else "parsing"

    def setup(self) -> None:
        """Loads the face parser when the options and the weights folder allow it."""
        if chosen_mask(self.options, self.weights) == "parsing":
            self.parser = ModelStore(self.weights).load_face_parser(self.device)

    def _region(self, frame: np.ndarray, landmarks: np.ndarray, box: Box) -> np.ndarray:
        if self.parser is None:
            return landmark_region(landmarks, box)
        square = paste_square(box)
        if frame.dtype != np.uint8:  # the parser reads 8 bits
            frame = (frame >> 8).astype(np.uint8)
        parsing = self.parser.parse(parser_input(frame, square)[None])[0]  # (512, 512) class ids
        return region_in_box(jaw_region(parsing), box, square)

    def __call__(self, row: Row) -> Row:
        options = job_options(row)
        info = video_info(row)
        generated = iter(row["generated"])
        deep = options.depth == "source" and info.bit_depth > 8  # x264 takes 8 or 10 bits: 12 and 16 give 10
        with tempfile.TemporaryDirectory(prefix="musedub-segment-") as work:
            path = Path(work) / "segment.mp4"
            with (
                FrameReader(info, deep=deep) as reader,
                SegmentEncoder(
                    path,
                    info.width,
                    info.height,
                    info.fps,
                    options.crf,
                    options.preset,
                    options.mbtree,
                    info.colour,
                    ten_bit=deep,
                ) as encoder,
            ):
                for i, frame in enumerate(reader.frames(row["source"])):
                    if row["status"][i] == FaceStatus.OK:
                        box = Box(*(int(v) for v in row["boxes"][i]))
                        mask = feathered_lower_half(self._region(frame, row["landmarks"][i], box), box)
                        frame = blend_face(frame, next(generated), box, mask)
                    encoder.write(frame)
            commit_file(path, row["segment_file"], "segment")  # a rerun never sees half a segment
        rest = {k: v for k, v in row.items() if k != "generated"}
        return {**rest, "frames_written": encoder.frames}
