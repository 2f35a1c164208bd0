"""A job's media index: its video probed once, at planning, and read back by every stage.

Probing demuxes every packet of the whole file (on object storage: downloads it), so a stage
that probed per segment made a film's bytes read grow with segments x size. Instead planning
probes once; in the same process stages get that result from memory (keyed by the job key,
which hashes the inputs' checksums), and on a cluster from a small file beside the job's work
(timestamps and the constant-rate map: about 16 bytes per frame, 3 MB for a 2-hour film).
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from musedub.infra.storage import read_bytes, write_bytes_atomic
from musedub.pipeline.media.frame_rate import parse_fps
from musedub.pipeline.media.probe import UNTAGGED, VideoInfo, probe_video

KEPT = 8  # indexes held per process: a worker moves through a few jobs at a time
INDEX_KEY = "media_index"  # a row's index file, when its job has one
_by_job: OrderedDict[str, VideoInfo] = OrderedDict()


def index_bytes(info: VideoInfo) -> bytes:
    """`info` as an .npz of its two arrays and its fields (no pickles)."""
    fields = {
        "uri": info.uri,
        "width": info.width,
        "height": info.height,
        "fps": str(info.fps),
        "rotation": info.rotation,
        "codec": info.codec,
        "still": info.still,
        "identity": info.identity,
        "colour": list(info.colour),
        "bit_depth": info.bit_depth,
    }
    buffer = io.BytesIO()
    meta = np.frombuffer(json.dumps(fields).encode(), np.uint8)
    np.savez(buffer, pts=info.pts, source_index=info.source_index, keyframes=info.keyframes, meta=meta)
    return buffer.getvalue()


def info_from_bytes(data: bytes) -> VideoInfo:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        fields = json.loads(arrays["meta"].tobytes())
        fields["fps"] = parse_fps(Fraction(fields["fps"]))
        fields["colour"] = tuple(fields.get("colour", UNTAGGED))
        keyframes = arrays["keyframes"] if "keyframes" in arrays else np.zeros((0, 3), np.int64)
        return VideoInfo(**fields, pts=arrays["pts"], source_index=arrays["source_index"], keyframes=keyframes)


def remember(job_key: str, info: VideoInfo) -> None:
    """Planning's probe, for the stages of this process."""
    _by_job[job_key] = info
    _by_job.move_to_end(job_key)
    while len(_by_job) > KEPT:
        _by_job.popitem(last=False)


def save_index(info: VideoInfo, uri: str) -> None:
    write_bytes_atomic(uri, index_bytes(info), "media index")


@lru_cache(maxsize=KEPT)
def load_index(uri: str) -> VideoInfo:
    return info_from_bytes(read_bytes(uri, "media index"))


def video_info(row: dict[str, Any]) -> VideoInfo:
    """The probed video of a row's job: from memory, else its index file, else (a row made
    without planning) a fresh probe."""
    known = _by_job.get(row.get("job_key", ""))
    if known is not None:
        return known
    if row.get(INDEX_KEY):
        return load_index(row[INDEX_KEY])
    return probe_video(row["video"], parse_fps(row["still_fps"]))
