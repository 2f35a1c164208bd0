"""Dialogue clips with two real, talking faces, for testing active-speaker detection.

Two different people (scikit-image's astronaut photo and a frontal official portrait,
tests/data/portrait.jpg) are pasted on plain backgrounds shot by shot; each mouth is warped open by
the loudness envelope of a speech, so which face talks, and whether it talks in sync with what is
heard, is known frame by frame. Encoded with PyAV. `bench/talking_faces_check.py` checks that dlib
finds both faces and that its landmarks follow both mouths. Needs scikit-image and dlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
from skimage.data import astronaut

from musedub.infra.sample_media import _audio_stream, _encode_audio
from musedub.models.landmarks import DlibLandmarks, dlib_predictor_path

SAMPLE_RATE = 16000
PORTRAIT = Path(__file__).parent / "data" / "portrait.jpg"  # a second real person, frontal (tests/data/README.md)
MAX_OPEN = 0.38  # the widest jaw drop, as a fraction of the mouth width (of a frontal face)
SILENT_DB, LOUD_DB = -45.0, -15.0  # frame RMS (dBFS) mapped to a closed and a fully open mouth
# Head-and-shoulders crop around the face box centre, in face heights: left/right, up, down.
CROP_SIDE, CROP_UP, CROP_DOWN = 1.0, 1.0, 1.4

Who = Literal["astronaut", "portrait"]
Speech = Literal["a", "b"]


@dataclass(frozen=True)
class Face:
    """One person in a shot; `speech` drives the mouth (None: a still mouth)."""

    who: Who
    centre: tuple[float, float]  # face centre on the canvas, 0..1 of its width and height
    height: int  # face (detector box) height in px
    speech: Speech | None


@dataclass(frozen=True)
class Shot:
    """A run of frames between two cuts; `audio` is the speech heard (None: silence)."""

    frames: int
    faces: tuple[Face, ...]
    audio: Speech | None
    background: tuple[int, int, int]  # RGB; give consecutive shots clearly different ones so cuts are seen


@dataclass(frozen=True)
class _Person:
    """How one photo becomes a face that dlib finds in every frame (dlib 19.24)."""

    upscale: int  # dlib finds the face and its landmarks in the photo scaled up this much
    tilt: float  # degrees counterclockwise about `pivot`, the face centre in photo px
    pivot: tuple[float, float]
    hidden: tuple[int, int] | None  # (row, column): the photo below and right of it is masked off (alpha 0)
    box_shift: float  # the landmark fit runs on dlib's box moved down this fraction of its height


PEOPLE = {
    "astronaut": _Person(upscale=1, tilt=0.0, pivot=(225.0, 132.0), hidden=None, box_shift=0.0),
    "portrait": _Person(upscale=1, tilt=0.0, pivot=(175.0, 155.0), hidden=None, box_shift=0.0),
}


@dataclass(frozen=True)
class _Portrait:
    photo: np.ndarray  # (H, W, 3) uint8 RGB
    visible: np.ndarray  # (H, W) float32, 0 where masked off
    landmarks: np.ndarray  # (68, 2) float32, photo px
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2


@cache
def _portrait(who: Who) -> _Portrait:
    """The photo as pasted, and its still landmarks, found once."""
    person = PEOPLE[who]
    photo = astronaut() if who == "astronaut" else cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    visible = np.ones(photo.shape[:2], np.float32)
    if person.hidden is not None:
        visible[person.hidden[0] :, person.hidden[1] :] = 0.0
    if person.tilt:
        matrix = cv2.getRotationMatrix2D(person.pivot, person.tilt, 1.0)  # (2, 3)
        size = photo.shape[1::-1]
        photo = cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        visible = cv2.warpAffine(visible, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    shown = (photo * visible[:, :, None] + 128 * (1 - visible[:, :, None])).astype(np.uint8)  # on mid grey
    big = cv2.resize(shown, None, fx=person.upscale, fy=person.upscale)
    detector = DlibLandmarks(dlib_predictor_path())
    boxes = detector.detect(big)
    if not len(boxes):
        raise RuntimeError(f"dlib finds no face in the {who} photo: its detector changed")
    box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]  # the largest face
    shift = person.box_shift * (box[3] - box[1])
    landmarks = (detector.landmarks(big, box + (0, shift, 0, shift)) + 0.5) / person.upscale - 0.5
    return _Portrait(photo, visible, landmarks.astype(np.float32), (box / person.upscale).astype(np.float32))


@dataclass(frozen=True)
class _Head:
    image: np.ndarray  # (h, w, 3) uint8 RGB head-and-shoulders crop
    alpha: np.ndarray  # (h, w, 1) float32, a soft ellipse less what is masked off
    landmarks: np.ndarray  # (68, 2) float32, crop px
    centre: tuple[float, float]  # the face box centre, crop px


@cache
def _head(who: Who, height: int) -> _Head:
    """The head-and-shoulders crop scaled so the face box is `height` px tall."""
    portrait = _portrait(who)
    x1, y1, x2, y2 = portrait.box
    scale = height / (y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    width, tall = round(2 * CROP_SIDE * height), round((CROP_UP + CROP_DOWN) * height)
    centre = (CROP_SIDE * height, CROP_UP * height)
    matrix = np.array([[scale, 0, centre[0] - scale * cx], [0, scale, centre[1] - scale * cy]])  # (2, 3)
    photo = portrait.photo if scale >= 1 else cv2.GaussianBlur(portrait.photo, (0, 0), 0.5 / scale)
    image = cv2.warpAffine(photo, matrix, (width, tall), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    landmarks = portrait.landmarks @ matrix[:, :2].T + matrix[:, 2]  # (68, 2)
    ellipse = np.zeros((tall, width), np.float32)
    cv2.ellipse(ellipse, (width // 2, tall // 2), (int(width * 0.46), int(tall * 0.46)), 0, 0, 360, 1.0, -1)
    visible = cv2.warpAffine(portrait.visible, matrix, (width, tall), borderMode=cv2.BORDER_REFLECT)
    alpha = (cv2.GaussianBlur(ellipse, (0, 0), 0.04 * width) * visible)[:, :, None]  # (h, w, 1)
    return _Head(image, alpha, landmarks.astype(np.float32), centre)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def open_mouth(image: np.ndarray, landmarks: np.ndarray, openness: float) -> np.ndarray:
    """RGB (H, W, 3) with its still (68, 2) landmarks -> the same face with the jaw dropped by
    `openness` (0..1) times MAX_OPEN mouth widths and a dark cavity between the lips.

    The vertical displacement (cv2.remap, pulled from output to source) is zero above the inner
    upper lip, grows to full at the lower lip, stays full down to the chin and fades out down the
    neck and towards the cheeks, so the jaw drops as one piece and nothing else moves.
    """
    mouth_width = float(np.linalg.norm(landmarks[54] - landmarks[48]))
    # A turned face's mouth looks narrow: its nose-to-chin length (about a frontal mouth width) stands in.
    span = max(mouth_width, float(np.linalg.norm(landmarks[8] - landmarks[33])))
    drop = float(np.clip(openness, 0.0, 1.0)) * MAX_OPEN * span
    if drop < 0.05:
        return image
    left, right = float(landmarks[48, 0]), float(landmarks[54, 0])
    chin = float(landmarks[8, 1])
    neck = max(0.5 * (chin - landmarks[33, 1]), 2 * drop)  # monotone pull: the fade outlasts the drop
    # Only the box around the lower face changes.
    mid, reach = float(landmarks[[51, 57, 62, 66], 0].mean()), 1.2 * span  # the lips' middle: off-centre when turned
    x0, x1 = max(int(mid - reach), 0), min(int(mid + reach) + 2, image.shape[1])
    y0, y1 = max(int(landmarks[33, 1]), 0), min(int(chin + drop + neck) + 2, image.shape[0])
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]  # (h, 1)
    # A bell across the mouth: full at its middle, ~0.4 at the corners (a lens-shaped opening), ~0 at the cheeks.
    column_drop = drop * np.exp(-0.5 * ((xs - mid) / (0.38 * span)) ** 2)  # (w,)
    outside = np.maximum(left - xs, xs - right)  # px beyond the mouth corners, (w,)
    upper = landmarks[[60, 61, 62, 63, 64]]
    lower = landmarks[[60, 67, 66, 65, 64]]
    top = np.interp(xs, upper[:, 0], upper[:, 1]) - np.maximum(outside, 0)  # cheeks stretch over a taller band
    bottom = np.interp(xs, lower[:, 0], lower[:, 1]) + column_drop  # where the inner lower lip lands
    rise = np.clip((ys - top) / np.maximum(bottom - top, 1.0), 0.0, 1.0)  # (h, w)
    fall = 1 - _smoothstep((ys - chin - column_drop) / neck)  # (h, w)
    map_y = ys - column_drop * np.minimum(rise, fall)  # (h, w)
    map_x = np.broadcast_to(xs, map_y.shape)
    out = image.copy()
    region = cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR)
    # The cavity: inner upper lip left to right, then the dropped inner lower lip right to left.
    dropped = lower[::-1] + np.stack([np.zeros(5), np.interp(lower[::-1, 0], xs, column_drop)], axis=1)  # (5, 2)
    polygon = np.concatenate([upper, dropped]) - (x0, y0)  # (10, 2)
    mask = np.zeros(map_y.shape, np.float32)
    cv2.fillPoly(mask, [np.round(polygon * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.03 * mouth_width, 0.5))[:, :, None]  # (h, w, 1)
    lips = image[int(landmarks[50:53, 1].min()) : int(landmarks[56:59, 1].max()) + 1, int(left) : int(right) + 1]
    cavity = 0.25 * lips.reshape(-1, 3).mean(axis=0)  # (3,): a dark shade of the lips
    out[y0:y1, x0:x1] = (region * (1 - 0.9 * mask) + cavity * 0.9 * mask).astype(np.uint8)
    return out


def speech_envelope(samples: np.ndarray, fps: int, frames: int) -> np.ndarray:
    """(frames,) float32 in [0, 1]: how loud the 16 kHz `samples` are in each video frame, in dB,
    silence 0 and loud syllables ~1, smoothed over 3 frames; it drives a mouth."""
    bounds = np.arange(frames + 1) * SAMPLE_RATE // fps
    padded = np.zeros(bounds[-1], np.float32)
    padded[: min(len(samples), bounds[-1])] = samples[: bounds[-1]]
    power = np.add.reduceat(padded.astype(np.float64) ** 2, bounds[:-1]) / np.diff(bounds)  # (frames,)
    db = 10 * np.log10(power + 1e-12)
    level = np.clip((db - SILENT_DB) / (LOUD_DB - SILENT_DB), 0.0, 1.0)
    return np.convolve(np.pad(level, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid").astype(np.float32)


def _paste(canvas: np.ndarray, image: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend `image` with its top-left corner at (x, y), clipped to the canvas."""
    h, w = image.shape[:2]
    cx0, cy0 = max(x, 0), max(y, 0)
    cx1, cy1 = min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if cx0 >= cx1 or cy0 >= cy1:
        return
    part = image[cy0 - y : cy1 - y, cx0 - x : cx1 - x]
    a = alpha[cy0 - y : cy1 - y, cx0 - x : cx1 - x]
    canvas[cy0:cy1, cx0:cx1] = (part * a + canvas[cy0:cy1, cx0:cx1] * (1 - a)).astype(np.uint8)


def _check_apart(faces: Sequence[Face], size: tuple[int, int]) -> None:
    """Faces must not overlap: a detector could not tell which mouth moves."""
    boxes = [
        (f.centre[0] * size[0] - f.height / 2, f.centre[1] * size[1] - f.height / 2, f.height) for f in faces
    ]  # square face boxes as (x, y, side)
    for i, (xa, ya, sa) in enumerate(boxes):
        for xb, yb, sb in boxes[i + 1 :]:
            if xa < xb + sb and xb < xa + sa and ya < yb + sb and yb < ya + sa:
                raise ValueError(f"faces overlap: {faces}")


def render_frame(shot: Shot, openness: dict[Speech, float], size: tuple[int, int]) -> np.ndarray:
    """RGB (H, W, 3): the shot's faces on its background, each mouth open by its speech's `openness`."""
    width, height = size
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = shot.background
    for face in shot.faces:
        head = _head(face.who, face.height)
        image = head.image
        if face.speech is not None:
            image = open_mouth(image, head.landmarks, openness[face.speech])
        x = round(face.centre[0] * width - head.centre[0])
        y = round(face.centre[1] * height - head.centre[1])
        _paste(canvas, image, head.alpha, x, y)
    return canvas


def write_dialogue(
    path: Path,
    shots: Sequence[Shot],
    speech_a: np.ndarray,
    speech_b: np.ndarray,
    fps: int = 25,
    size: tuple[int, int] = (640, 360),
    crf: int = 18,
) -> Path:
    """Encode the shots back to back (H.264 yuv420p, 16 kHz mono AAC of the same length).

    Time runs on across cuts: at frame i every mouth follows its speech at i/fps, and the track
    holds each shot's `audio` speech at those same times, so a face driven by the speech heard
    is in sync with it, and one driven by the other speech talks but not what is heard.
    """
    for shot in shots:
        _check_apart(shot.faces, size)
    total = sum(shot.frames for shot in shots)
    bounds = np.arange(total + 1) * SAMPLE_RATE // fps  # sample at which each frame starts
    speeches = {"a": speech_a, "b": speech_b}
    envelopes = {k: speech_envelope(s, fps, total) for k, s in speeches.items()}
    padded = {k: np.pad(s[: bounds[-1]], (0, max(bounds[-1] - len(s), 0))) for k, s in speeches.items()}
    track = np.zeros(bounds[-1], np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        sound = _audio_stream(container, 1, SAMPLE_RATE, "aac")
        start = 0
        for shot in shots:
            end = start + shot.frames
            if shot.audio is not None:
                track[bounds[start] : bounds[end]] = padded[shot.audio][bounds[start] : bounds[end]]
            for i in range(start, end):
                rgb = render_frame(shot, {k: float(e[i]) for k, e in envelopes.items()}, size)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            start = end
        container.mux(stream.encode(None))
        _encode_audio(container, sound, track[:, None])
    return path
