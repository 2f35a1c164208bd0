"""Backends load from local files only and fail at setup, with the fix, when files are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import ConfigError
from models.landmarks import FAN_FILE, S3FD_FILE, dlib_predictor_path, load_landmark_detector


def test_dlib_model_found_without_importing_its_package() -> None:
    path = dlib_predictor_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 90_000_000


def test_face_alignment_without_its_files_names_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{S3FD_FILE}, {FAN_FILE} are missing.*weights download"):
        load_landmark_detector("face-alignment", tmp_path)


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="not a backend"):
        load_landmark_detector("mediapipe", Path("."))  # type: ignore[arg-type]
