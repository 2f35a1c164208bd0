"""The preview's measurements without a browser: the sync fit finds a known audio-visual lag, the
plot breaks where no face was seen, the dubbed face is the one whose mouth changed, and a file
that is not a report is refused in one line."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from musedub.infra.errors import InputError
from musedub.pipeline.dub.preview.dubbed_face import dubbed_track
from musedub.pipeline.dub.preview.job import read_report
from musedub.pipeline.dub.preview.sync_plot import sync_fit, sync_svg


def test_sync_fit_finds_the_lag_and_the_plot_breaks_where_no_face_was_seen() -> None:
    rng = np.random.default_rng(0)
    level = np.convolve(rng.normal(size=260), np.ones(4) / 4, mode="same")[:250] * 10 - 30  # (250,) dB
    opening = np.full(250, np.nan)
    opening[3:] = 0.05 + 0.01 * (level[:-3] + 30) + rng.normal(scale=0.002, size=247)  # follows 3 frames late
    opening[100:110] = np.nan  # no face there
    fit = sync_fit(opening, level)
    assert fit.best_lag == 3 and fit.best_r > 0.95 and fit.r < 0.6
    assert fit.frames == 250 - 3 - 10
    svg = sync_svg(500, opening, level, Fraction(25), [(520, 540)])
    assert svg.count('stroke="#d9480f" stroke-width="1.8"') == 2  # the mouth line, broken at the gap
    assert svg.count("<rect") == 2 and ">20 s<" in svg and ">29 s<" in svg  # one rest; ticks at absolute time


def test_a_file_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "summary.json"
    other.write_text(json.dumps({"run_id": "x", "jobs": []}))
    with pytest.raises(InputError, match=r"report .*summary.json lacks job_id, fps, .*: give the .report.json"):
        read_report(str(other))


def _face(x: float, y: float, size: float) -> np.ndarray:
    """68 points over a size x size box at (x, y): only their box matters here -> (68, 2)."""
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 17), np.linspace(0, 1, 4)), axis=-1).reshape(68, 2)
    return (grid * size + [x, y]).astype(np.float32)


@pytest.mark.parametrize("dubbed", [0, 1])
def test_the_dubbed_face_is_the_one_whose_lower_half_changed(dubbed: int) -> None:
    rng = np.random.default_rng(1)
    faces = np.stack([np.stack([_face(10, 10, 40)] * 6), np.stack([_face(60, 10, 40)] * 6)])  # (2, 6, 68, 2)
    faces[0, 2] = np.nan  # face 0 not seen in one frame
    befores = [rng.integers(0, 256, (64, 110, 3), dtype=np.uint8) for _ in range(6)]
    afters = []
    for before in befores:
        after = np.clip(before.astype(np.int16) + rng.integers(-2, 3, before.shape), 0, 255).astype(np.uint8)
        x = 10 + 50 * dubbed
        after[30:50, x : x + 40] = 255 - before[30:50, x : x + 40]  # a new mouth under that face only
        afters.append(after)
    assert dubbed_track(faces, np.arange(6), befores, afters) == dubbed
