"""A video's probe and checksum are made once per version of it in a process (a film dubbed into
many languages is probed once per plan worker), a replaced file is probed again even when it
keeps the old one's size and modification time, and plan tasks take a video's jobs together."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest

from musedub.infra.sample_media import write_clip
from musedub.pipeline.dub import plan


def test_a_video_is_probed_once_per_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[str] = []
    probe = plan.probe_video

    def counted(uri: str, still_fps: Fraction) -> plan.VideoInfo:
        probes.append(uri)
        return probe(uri, still_fps)

    monkeypatch.setattr(plan, "probe_video", counted)
    video = str(write_clip(tmp_path / "film.mp4", Fraction(25), 10))
    info, checksum = plan.probed_video(video, Fraction(25))
    assert plan.probed_video(video, Fraction(25)) == (info, checksum) and len(probes) == 1
    # other bytes of the same size and modification time put in its place (a re-rendered master
    # copied over with its timestamp kept)
    stat = os.stat(video)
    data = bytearray(Path(video).read_bytes())
    data[len(data) // 2] ^= 0xFF
    replacement = tmp_path / "replacement.mp4"
    replacement.write_bytes(bytes(data))
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, video)
    _, new_checksum = plan.probed_video(video, Fraction(25))
    assert len(probes) == 2 and new_checksum != checksum


def test_plan_tasks_take_jobs_of_the_same_video_together() -> None:
    """10,000 jobs over 1,000 videos on 8 plan slots: groups of at most 32, each job once, and a
    video's jobs in as few groups as the size allows."""
    from musedub.pipeline.dub.manifest import JobSpec
    from musedub.pipeline.dub.plan_task import JOBS_PER_TASK, plan_groups

    specs = [
        JobSpec(job_id=f"j{i}", video=f"/v/{i % 1000}.mp4", audio=f"/a/{i}.wav", output=f"/o/{i}.mp4")
        for i in range(10_000)
    ]
    groups = plan_groups([(spec, None, "", "", None) for spec in specs], slots=8)  # type: ignore[misc]
    assert sorted(i for group in groups for i in group) == list(range(10_000))
    assert max(map(len, groups)) == JOBS_PER_TASK and len(groups) >= 4 * 8
    videos = [{specs[i].video for i in group} for group in groups]
    assert max(map(len, videos)) <= 4  # 10 jobs a video, 32 a group
    assert plan_groups([(specs[0], None, "", "", None)] * 5, slots=8) == [[0], [1], [2], [3], [4]]  # type: ignore[misc]
