"""Which frames eval scores: all of them, or runs of 16 spread over the whole video."""

from __future__ import annotations

import pytest

from musedub.pipeline.evaluation.sampling import parse_frames, sampled_runs


def test_a_cap_spreads_runs_of_16_over_the_whole_video() -> None:
    runs = sampled_runs(1000, 64)
    assert [(r.start, len(r)) for r in runs] == [(117, 16), (367, 16), (617, 16), (867, 16)]  # middles of quarters
    assert sampled_runs(1000, "all") == [range(1000)]
    assert sampled_runs(40, 48) == [range(40)]  # a video shorter than the cap: every frame
    assert sampled_runs(33, 32) == [range(0, 16), range(16, 32)]
    assert sampled_runs(0, "all") == []


def test_frames_is_all_or_a_multiple_of_16() -> None:
    assert (parse_frames("all"), parse_frames("32"), parse_frames(48)) == ("all", 32, 48)
    for bad in ("750", "8", "0", "-16", "many", True):
        with pytest.raises(ValueError, match="multiple of 16"):
            parse_frames(bad)
