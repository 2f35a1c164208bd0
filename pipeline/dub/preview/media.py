"""Pictures and a clip for a page that must work offline: JPEG stills and a VP9 WebM, both made
with OpenCV and PyAV (already dependencies) and inlined as base64 data URIs.

VP9 in WebM is the codec every Chromium build decodes (H.264 needs the proprietary-codec build).
"""

from __future__ import annotations

import base64
import io
from fractions import Fraction

import av
import cv2
import numpy as np

JPEG_QUALITY = 85
STILL_HEIGHT = 240  # px of each half of a before/after still
CLIP_SIDE = 192  # px of each half of the mouth clip
MOUTH = slice(48, 68)  # iBUG points of the outer and inner lips
JAW = slice(0, 17)
MOUTH_BOX_SCALE = 0.8  # the clip's square side, in jaw widths: nose tip to chin, cheek to cheek


def data_uri(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def jpeg_uri(rgb: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as JPEG")
    return data_uri("image/jpeg", encoded.tobytes())


def side_by_side(before: np.ndarray, after: np.ndarray, height: int = STILL_HEIGHT) -> np.ndarray:
    """Two RGB frames of one size, scaled to `height` and joined left to right -> (height, 2w, 3)."""
    scale = min(1.0, height / before.shape[0])
    size = (max(1, round(before.shape[1] * scale)), max(1, round(before.shape[0] * scale)))
    halves = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in (before, after)]
    return np.hstack(halves)


def mouth_boxes(landmarks: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Per frame a square (x1, y1, x2, y2) int around the mouth, of one size for the whole clip so
    the zoom holds still; frames without landmarks take the nearest seen frame's centre.
    landmarks (T, 68, 2) with NaN where the face is not seen -> (T, 4) int, or None if never seen."""
    seen = ~np.isnan(landmarks[:, 0, 0])
    if not seen.any():
        return None
    centres = np.full((len(landmarks), 2), np.nan)
    centres[seen] = landmarks[seen][:, MOUTH].mean(axis=1)  # (k, 2)
    known = np.flatnonzero(seen)
    nearest = known[np.abs(np.arange(len(landmarks))[:, None] - known[None, :]).argmin(axis=1)]  # (T,)
    centres = centres[nearest]
    jaw = landmarks[seen][:, JAW, 0]  # (k, 17) x of the jaw line
    side = float(np.median(jaw.max(axis=1) - jaw.min(axis=1))) * MOUTH_BOX_SCALE
    side = int(min(max(side, 16), width, height))
    x1 = np.clip(np.round(centres[:, 0] - side / 2), 0, width - side).astype(np.int64)
    y1 = np.clip(np.round(centres[:, 1] - side / 2), 0, height - side).astype(np.int64)
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def crop_square(frame: np.ndarray, box: np.ndarray, side: int = CLIP_SIDE) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in box)
    return cv2.resize(frame[y1:y2, x1:x2], (side, side), interpolation=cv2.INTER_AREA)


def webm_uri(frames: list[np.ndarray], fps: Fraction) -> str:
    """RGB frames of one even size -> a VP9 WebM data URI. Realtime speed settings: a preview clip
    of a few seconds encodes in well under a second."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / fps
        stream.options = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return data_uri("video/webm", buffer.getvalue())
