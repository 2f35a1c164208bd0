"""Backends load from local files only and fail at setup, with the fix, when files are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musedub.infra.errors import ConfigError
from musedub.models.landmarks import (
    FAN_FILE,
    S3FD_FILE,
    dlib_predictor_path,
    load_landmark_detector,
    native_image,
)


def test_dlib_model_found_without_importing_its_package() -> None:
    path = dlib_predictor_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 90_000_000


def test_face_alignment_without_its_files_names_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{S3FD_FILE}, {FAN_FILE} are missing.*weights download"):
        load_landmark_detector("face-alignment", tmp_path)


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="not a backend"):
        load_landmark_detector("mediapipe", Path("."))  # type: ignore[arg-type]


def test_face_alignment_loads_both_files_from_the_weights_folder_without_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random S3FD and 2DFAN4 weights in the published file names; torch.hub points at an empty
    folder, so any attempt to download would fail (there is no network)."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from musedub.infra.sample_media import face_frame

    torch.manual_seed(0)
    folder = tmp_path / "face-alignment"
    folder.mkdir()
    torch.save(s3fd().state_dict(), folder / S3FD_FILE)
    torch.save(FAN(4).state_dict(), folder / FAN_FILE)
    hub = tmp_path / "hub"
    monkeypatch.setenv("TORCH_HOME", str(hub))
    torch.hub.set_dir(str(hub))
    detector = load_landmark_detector("face-alignment", folder)
    frame = face_frame(0.0)
    boxes = detector.detect(frame)
    assert boxes.ndim == 2 and boxes.shape[1] == 4  # random weights: any number of boxes
    assert detector.detect(np.ascontiguousarray(frame[:16])).shape == (0, 4)  # under S3FD's 32 px: none, no crash
    marks = detector.landmarks(frame, np.array([100, 60, 220, 200], np.float32))
    assert marks.shape == (68, 2) and np.isfinite(marks).all()
    assert not (hub / "checkpoints").exists()  # nothing was fetched


def test_padded_rows_are_packed_before_dlib_reads_them(dlib_detector) -> None:
    """PyAV returns rows padded to an alignment at widths such as 854: dlib must see packed rows."""
    from skimage.data import astronaut

    image = np.ascontiguousarray(astronaut()[:, :427])  # an odd width, so 3*W is not aligned
    padded = np.zeros((image.shape[0], image.shape[1] + 5, 3), np.uint8)
    padded[:, : image.shape[1]] = image
    view = padded[:, : image.shape[1]]  # the same pixels, rows 15 bytes apart from packed
    assert not view.flags.c_contiguous
    packed = native_image(view)
    assert packed.flags.c_contiguous and np.array_equal(packed, image)
    boxes = dlib_detector.detect(image)
    assert len(boxes) == 1
    np.testing.assert_array_equal(dlib_detector.detect(view), boxes)
    np.testing.assert_array_equal(dlib_detector.landmarks(view, boxes[0]), dlib_detector.landmarks(image, boxes[0]))
    with pytest.raises(ValueError, match="uint8 RGB"):
        native_image(image[..., 0])
