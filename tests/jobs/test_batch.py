"""`musedub batch` on a real 2-CPU local Ray cluster with tiny random weights and real dlib faces:
S3 in and out with a corrupt job isolated, segments giving the single-video path's frames, and a
driver killed mid-batch resumed to the same frames as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_checks import decoded

from infra.sample_media import write_clip
from infra.weights_layout import WeightsLayout
from jobs.cli import main

SEGMENT_ARGS = ["--landmarks", "dlib", "--device", "cpu", "--length-policy", "trim-audio", "--segment-seconds", "0.4"]


@pytest.fixture(scope="module")
def ray_cluster(s3_endpoint: str) -> Iterator[str]:
    """A local 2-CPU cluster started after the S3 endpoint is in the environment its workers inherit."""
    import ray

    from infra.ray_cluster import connect

    connect(num_cpus=2)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def batch(manifest: str, weights: WeightsLayout, *extra: str) -> int:
    return main(["batch", manifest, "--weights", str(weights.root), *SEGMENT_ARGS, *extra])


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_s3_batch_commits_good_jobs_and_isolates_the_corrupt_one(
    ray_cluster: str, tiny_weights: WeightsLayout, clip_dir: Path, short_speech: Path, s3_bucket: str, tmp_path: Path
) -> None:
    import boto3

    s3 = boto3.client("s3")
    clip = write_clip(clip_dir / "batch_s3.mp4", Fraction(25), 25)
    s3.upload_file(str(clip), s3_bucket, "in/face.mp4")
    s3.put_object(Bucket=s3_bucket, Key="in/corrupt.mp4", Body=clip.read_bytes()[:3000])
    s3.upload_file(str(short_speech), s3_bucket, "in/speech.wav")
    root = f"s3://{s3_bucket}"
    rows = [
        {
            "job_id": "good-1",
            "video": f"{root}/in/face.mp4",
            "audio": f"{root}/in/speech.wav",
            "output": f"{root}/out/1.mp4",
        },
        {
            "job_id": "bad",
            "video": f"{root}/in/corrupt.mp4",
            "audio": f"{root}/in/speech.wav",
            "output": f"{root}/out/bad.mp4",
        },
        {
            "job_id": "good-2",
            "video": f"{root}/in/face.mp4",
            "audio": f"{root}/in/speech.wav",
            "output": f"{root}/out/2.mp4",
            "crf": 20,
        },
    ]
    manifest = write_manifest(tmp_path / "jobs.jsonl", rows)
    s3.upload_file(str(manifest), s3_bucket, "jobs.jsonl")
    assert batch(f"{root}/jobs.jsonl", tiny_weights, "--output-prefix", f"{root}/out") == 1
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]}
    assert {"out/1.mp4", "out/1.mp4.report.json", "out/2.mp4", "out/2.mp4.report.json"} <= keys
    assert not any(k.startswith("out/bad.mp4") for k in keys)  # nothing at the failed job's output
    assert not any(k.startswith("out/.musedub-work/good-") for k in keys)  # committed jobs leave no work
    for key, crf in (("out/1.mp4", 16), ("out/2.mp4", 20)):
        report = json.loads(s3.get_object(Bucket=s3_bucket, Key=key + ".report.json")["Body"].read())
        assert report["output_frames"] == 25 and report["segments"] == 3 and report["options"]["crf"] == crf
        assert report["checksums"]["video"].startswith("etag:") and report["faces"]["ok"] == 25
        local = tmp_path / key.replace("/", "_")
        s3.download_file(s3_bucket, key, str(local))
        assert len(decoded(local)) == 25
    # a rerun leaves committed jobs alone and fails the bad one again
    assert batch(f"{root}/jobs.jsonl", tiny_weights) == 1


def test_segments_on_the_cluster_equal_the_single_video_path_and_resume_after_a_killed_driver(
    ray_cluster: str, tiny_weights: WeightsLayout, clip_dir: Path, short_speech: Path, tmp_path: Path
) -> None:
    clip = write_clip(clip_dir / "batch_local.mp4", Fraction(25), 50)  # 2 s; the audio is 2.2 s
    single = tmp_path / "single.mp4"
    dub_args = ["dub", "--video", str(clip), "--audio", str(short_speech), "--output", str(single)]
    assert main([*dub_args, "--weights", str(tiny_weights.root), *SEGMENT_ARGS]) == 0
    expected = decoded(single)
    assert len(expected) == 50

    job = {"job_id": "whole", "video": str(clip), "audio": str(short_speech), "output": str(tmp_path / "whole.mp4")}
    assert batch(str(write_manifest(tmp_path / "whole.jsonl", [job])), tiny_weights) == 0
    report = json.loads((tmp_path / "whole.mp4.report.json").read_text())
    assert report["segments"] == 5 and report["segments_reused"] == 0
    whole = decoded(tmp_path / "whole.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(whole, expected, strict=True))

    # a driver killed once two segments are recorded; the rerun redoes only the rest
    out = tmp_path / "resumed.mp4"
    manifest = write_manifest(tmp_path / "resume.jsonl", [{**job, "job_id": "resumed", "output": str(out)}])
    work = tmp_path / ".musedub-work" / "resumed"
    command = [sys.executable, "-m", "jobs.cli", "batch", str(manifest), "--weights", str(tiny_weights.root)]
    driver = subprocess.Popen(
        [*command, *SEGMENT_ARGS, "--address", ray_cluster],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    deadline = time.monotonic() + 300
    while len(list(work.glob("*.json"))) < 2:
        assert driver.poll() is None, "the driver ended before it could be killed"
        assert time.monotonic() < deadline, "no segment finished within 300 s"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    finished = {p.name: p.stat().st_mtime_ns for p in work.glob("*.mp4") if (work / f"{p.stem}.json").exists()}
    assert not out.exists() and 2 <= len(finished) < 5
    assert batch(str(manifest), tiny_weights) == 0
    report = json.loads((tmp_path / "resumed.mp4.report.json").read_text())
    assert report["segments_reused"] == len(finished)  # only the unfinished segments ran again
    assert all(np.array_equal(a, b) for a, b in zip(decoded(out), whole, strict=True))
