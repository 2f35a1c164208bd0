"""Long sources cut into spans of 25 fps frames, each a row that one worker preprocesses alone.

Planning reads each source's headers (a few ranged reads); a source that declares more than
`shard_seconds` is probed here, in the driver, once: its media index goes beside the run
(`RUN/media/ID.npz`) and every span reads it instead of probing again. Spans are whole multiples
of `shard_frames` from frame 0 (at the default 300 s, ten whisper windows each), the last one
shorter. A span edge acts as a shot cut: clips end there and tracking starts afresh after it.
Sources that fit in one span stay one row with no span fields, processed as before sharding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from musedub.infra.errors import InputError
from musedub.infra.storage import join_uri
from musedub.pipeline.core.stage import ITEM_ID, Row
from musedub.pipeline.dataset.settings import TRAIN_FPS, PreprocessSettings
from musedub.pipeline.dataset.tables import part_item, span_part
from musedub.pipeline.media.index import INDEX_KEY, save_index
from musedub.pipeline.media.open import open_media
from musedub.pipeline.media.probe import VideoInfo, header_seconds, probe_video

SPAN, SPANS, START, STOP = "span", "spans", "start", "stop"  # a span row's fields (frames [start, stop))
PROBES = 4  # sources planning reads at once: a remote probe mostly waits on the network
WHAT = "source video"


def resample_25(info: VideoInfo) -> np.ndarray:
    """Constant-rate frame shown at each 25 fps tick: j -> floor(j * fps / 25), (M,) int64."""
    fps = info.fps
    count = info.frame_count * TRAIN_FPS.numerator * fps.denominator // (fps.numerator * TRAIN_FPS.denominator)
    ticks = np.arange(max(count, 1), dtype=np.int64)
    return np.minimum(ticks * fps.numerator // (TRAIN_FPS * fps.denominator), info.frame_count - 1).astype(np.int64)


def span_edges(count: int, shard_frames: int) -> list[tuple[int, int]]:
    """[start, stop) of each span of a `count`-frame source: multiples of `shard_frames`."""
    return [(a, min(a + shard_frames, count)) for a in range(0, max(count, 1), shard_frames)]


def shard_rows(rows: list[Row], settings: PreprocessSettings, work: str) -> list[Row]:
    """Whole-source rows -> the same rows, a long source's replaced by its span rows."""
    with ThreadPoolExecutor(PROBES) as pool:
        return [span for spans in pool.map(partial(_spans, settings=settings, work=work), rows) for span in spans]


def _spans(row: Row, settings: PreprocessSettings, work: str) -> list[Row]:
    try:
        with open_media(row["source"], WHAT, "an mp4, mov, mkv, ...") as container:
            streams = container.streams.video
            seconds = header_seconds(container, streams[0]) if streams else 0.0
        if 0 < seconds * TRAIN_FPS <= settings.shard_frames or not streams:
            return [row]
        info = probe_video(row["source"], what=WHAT)
    except InputError:  # the stage meets the same fault and fails the source with it, as before sharding
        return [row]
    edges = span_edges(len(resample_25(info)), settings.shard_frames)
    index = join_uri(work, "media", f"{row['source_id']}.npz")
    save_index(info, index)
    if len(edges) == 1:
        return [{**row, INDEX_KEY: index}]
    return [
        {
            **row,
            ITEM_ID: part_item(row["source_id"], span_part(k)),
            INDEX_KEY: index,
            SPAN: k,
            SPANS: len(edges),
            START: a,
            STOP: b,
        }
        for k, (a, b) in enumerate(edges)
    ]
