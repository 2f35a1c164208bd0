"""Clips are runs of usable face frames in one shot, split at the maximum length."""

from __future__ import annotations

import numpy as np
import pytest

from musedub.pipeline.dataset.clip_cut import cut_clips
from musedub.pipeline.face.crop_geometry import FaceStatus

OK, NO, SMALL, OUT = FaceStatus.OK, FaceStatus.NO_FACE, FaceStatus.TOO_SMALL, FaceStatus.LEAVING_FRAME


def test_runs_break_at_faults_and_shots() -> None:
    status = np.array([OK] * 10 + [NO] * 2 + [OK] * 8 + [SMALL] + [OK] * 3 + [OUT] + [OK] * 12, np.uint8)
    shot = np.zeros(len(status), np.int32)
    shot[30:] = 1  # a cut inside the last run
    clips, dropped = cut_clips(status, shot, max_frames=100, min_frames=5)
    assert [(c.start, c.stop, c.shot) for c in clips] == [(0, 10, 0), (12, 20, 0), (25, 30, 0), (30, 37, 1)]
    assert dropped == {"no_face": 2, "small_face": 1, "leaving_frame": 1, "not_speaking": 0, "short_run": 3}
    assert sum(len(c) for c in clips) + sum(dropped.values()) == len(status)


def test_long_runs_split_evenly_within_the_maximum() -> None:
    status = np.full(1601, OK, np.uint8)
    clips, dropped = cut_clips(status, np.zeros(1601, np.int32), max_frames=750, min_frames=25)
    assert [len(c) for c in clips] == [533, 534, 534]
    assert clips[0].start == 0 and clips[-1].stop == 1601
    assert all(a.stop == b.start for a, b in zip(clips, clips[1:], strict=False))
    assert sum(dropped.values()) == 0


def test_empty_and_bad_bounds() -> None:
    assert cut_clips(np.zeros(0, np.uint8), np.zeros(0, np.int32), 750, 25)[0] == []
    with pytest.raises(ValueError):
        cut_clips(np.zeros(3, np.uint8), np.zeros(3, np.int32), 10, 20)
