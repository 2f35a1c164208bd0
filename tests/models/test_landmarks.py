"""Backends load from local files only and fail at setup, with the fix, when files are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musedub.infra.errors import ConfigError
from musedub.models.landmarks import FAN_FILE, S3FD_FILE, dlib_predictor_path, load_landmark_detector


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
    marks = detector.landmarks(frame, np.array([100, 60, 220, 200], np.float32))
    assert marks.shape == (68, 2) and np.isfinite(marks).all()
    assert not (hub / "checkpoints").exists()  # nothing was fetched
