"""`musedub batch` on a real 2-CPU local Ray cluster with tiny random weights and real dlib faces:
S3 in and out with a corrupt job isolated, segments giving the single-video path's frames, a
driver killed mid-batch resumed to the same frames, and a stage worker killed mid-segment retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
import pytest
from media_checks import decoded

from musedub.infra.sample_media import write_clip
from musedub.infra.webhook import SECRET_ENV, SIGNATURE_HEADER, signature
from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout

pytestmark = pytest.mark.slow  # end to end on the shared Ray cluster (and S3)

if TYPE_CHECKING:
    from tests.conftest import WebhookReceiver

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
SEGMENT_ARGS = [
    *("--landmarks", "dlib", "--device", "cpu", "--length-policy", "trim-audio", "--segment-seconds", "0.4"),
    "--no-preview",  # previews are looked at once, in the S3 test
]


def batch(manifest: str, weights: WeightsLayout, *extra: str) -> int:
    return main(["batch", manifest, "--weights", str(weights.root), *SEGMENT_ARGS, *extra])


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_s3_batch_commits_good_jobs_and_isolates_every_bad_one(
    ray_cluster: str,
    tiny_weights: WeightsLayout,
    clip_dir: Path,
    short_speech: Path,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    webhook_receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A corrupt video, credentials in a URI, an output outside the prefix and a row missing its
    audio each fail alone with their own record; no output, record or line holds the secret. A
    webhook hears every job's end and the batch's; `musedub status` reads the run back."""
    import boto3

    s3 = boto3.client("s3")
    clip = write_clip(clip_dir / "batch_s3.mp4", Fraction(25), 25)
    s3.upload_file(str(clip), s3_bucket, "in/face.mp4")
    s3.put_object(Bucket=s3_bucket, Key="in/corrupt.mp4", Body=clip.read_bytes()[:3000])
    s3.upload_file(str(short_speech), s3_bucket, "in/speech.wav")
    root = f"s3://{s3_bucket}"
    rows_base = {"video": f"{root}/in/face.mp4", "audio": f"{root}/in/speech.wav", "output": f"{root}/out/x.mp4"}
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
        {**rows_base, "job_id": "leaky", "video": f"s3://AKIAEXAMPLE:{SECRET}@{s3_bucket}/in/face.mp4"},
        {**rows_base, "job_id": "escape", "output": f"{root}/elsewhere/e.mp4"},
        {"job_id": "no-audio", "video": f"{root}/in/face.mp4", "output": f"{root}/out/n.mp4"},
    ]
    manifest = write_manifest(tmp_path / "jobs.jsonl", rows)
    s3.upload_file(str(manifest), s3_bucket, "jobs.jsonl")
    monkeypatch.setenv(SECRET_ENV, "hook-secret")
    hook = ["--webhook", webhook_receiver.url]
    assert batch(f"{root}/jobs.jsonl", tiny_weights, "--output-prefix", f"{root}/out", *hook, "--preview") == 1
    printed = capsys.readouterr()
    summary_lines = [line for line in printed.out.splitlines() if line.split(" ")[0] in {r["job_id"] for r in rows}]
    statuses = {line.split()[0]: line.split()[1] for line in summary_lines}
    assert statuses == {
        **dict.fromkeys(["bad", "leaky", "escape", "no-audio"], "failed"),
        "good-1": "done",
        "good-2": "done",
    }
    assert "line 6: audio: Field required" in printed.out
    assert "line 4: video: video 's3://***@" in printed.out and "outside the allowed prefix" in printed.out
    runs = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/.musedub-runs/")["Contents"]]
    summary = json.loads(
        s3.get_object(Bucket=s3_bucket, Key=next(k for k in runs if k.endswith("summary.json")))["Body"].read()
    )
    assert summary["counts"] == {"done": 2, "up to date": 0, "failed": 4}
    assert sum(k.endswith(".parquet") for k in runs) == 4  # one error record per failed job
    every_object = b"".join(  # the manifest aside: the secret is the user's own input there
        s3.get_object(Bucket=s3_bucket, Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
        if o["Key"] != "jobs.jsonl"
    )
    assert SECRET.encode() not in every_object and SECRET not in printed.out + printed.err
    assert "Traceback" not in printed.out + printed.err
    events = [json.loads(body) for _, body in webhook_receiver.received]
    assert sorted((e["job_id"], e["status"]) for e in events if e["event"] == "job") == sorted(statuses.items())
    assert events[-1]["event"] == "batch" and events[-1]["counts"] == summary["counts"]
    for headers, body in webhook_receiver.received:
        assert headers[SIGNATURE_HEADER] == signature(b"hook-secret", body)
    run_folder = f"{root}/" + next(k for k in runs if k.endswith("summary.json")).removesuffix("/summary.json")
    assert main(["status", run_folder]) == 1  # some jobs failed
    shown = capsys.readouterr().out
    assert ": finished" in shown and "good-1    done" in shown and "[leaky] manifest:" in shown
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]}
    assert {"out/1.mp4", "out/1.mp4.report.json", "out/2.mp4", "out/2.mp4.report.json"} <= keys
    assert {"out/1.mp4.preview.html", "out/2.mp4.preview.html"} <= keys  # the index is checked in a browser elsewhere
    index = s3.get_object(Bucket=s3_bucket, Key=run_folder.removeprefix(f"{root}/") + "/index.html")["Body"].read()
    assert b"1.mp4.preview.html" in index and b"leaky" in index and f"previews: {run_folder}/index.html" in printed.out
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
    assert batch(f"{root}/jobs.jsonl", tiny_weights, "--output-prefix", f"{root}/out") == 1


@pytest.fixture(scope="module")
def single_video(
    tiny_weights: WeightsLayout, clip_dir: Path, short_speech: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], list[np.ndarray]]:
    """A 2 s job (5 segments of 0.4 s) and the frames `musedub dub` makes of it in process."""
    clip = write_clip(clip_dir / "batch_local.mp4", Fraction(25), 50)  # 2 s; the audio is 2.2 s
    single = tmp_path_factory.mktemp("single") / "single.mp4"
    dub_args = ["dub", "--video", str(clip), "--audio", str(short_speech), "--output", str(single)]
    assert main([*dub_args, "--weights", str(tiny_weights.root), *SEGMENT_ARGS]) == 0
    expected = decoded(single)
    assert len(expected) == 50
    return {"video": str(clip), "audio": str(short_speech)}, expected


def start_driver(manifest: Path, weights: WeightsLayout, address: str, *extra: str) -> subprocess.Popen:
    """`musedub batch` in its own process group on the test's cluster, so the test can kill it."""
    command = [sys.executable, "-m", "musedub.jobs.cli", "batch", str(manifest), "--weights", str(weights.root)]
    return subprocess.Popen(
        [*command, *SEGMENT_ARGS, "--address", address, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def wait_for_segments(work: Path, count: int, driver: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while len(list(work.glob("*.json"))) < count:
        assert driver.poll() is None, f"the driver ended (exit {driver.returncode}) before {count} segments"
        assert time.monotonic() < deadline, f"{count} segments did not finish within 300 s"
        time.sleep(0.2)


def test_segments_on_the_cluster_equal_the_single_video_path(
    ray_cluster: str, tiny_weights: WeightsLayout, single_video: tuple[dict[str, str], list[np.ndarray]], tmp_path: Path
) -> None:
    inputs, expected = single_video
    job = {"job_id": "whole", **inputs, "output": str(tmp_path / "whole.mp4")}
    assert batch(str(write_manifest(tmp_path / "whole.jsonl", [job])), tiny_weights) == 0
    report = json.loads((tmp_path / "whole.mp4.report.json").read_text())
    assert report["segments"] == 5 and report["segments_reused"] == 0
    assert all(np.array_equal(a, b) for a, b in zip(decoded(tmp_path / "whole.mp4"), expected, strict=True))


def test_a_killed_driver_resumes_with_only_the_unfinished_segments(
    ray_cluster: str, tiny_weights: WeightsLayout, single_video: tuple[dict[str, str], list[np.ndarray]], tmp_path: Path
) -> None:
    inputs, expected = single_video
    out = tmp_path / "resumed.mp4"
    manifest = write_manifest(tmp_path / "resume.jsonl", [{"job_id": "resumed", **inputs, "output": str(out)}])
    work = tmp_path / ".musedub-work" / "resumed"
    driver = start_driver(manifest, tiny_weights, ray_cluster)
    wait_for_segments(work, 2, driver)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    finished = {p.name: p.stat().st_mtime_ns for p in work.glob("*.mp4") if (work / f"{p.stem}.json").exists()}
    assert not out.exists() and 2 <= len(finished) < 5
    assert batch(str(manifest), tiny_weights) == 0
    report = json.loads((tmp_path / "resumed.mp4.report.json").read_text())
    assert report["segments_reused"] == len(finished)  # only the unfinished segments ran again
    # equal to `dub`, which the uninterrupted batch equals (the test above)
    assert all(np.array_equal(a, b) for a, b in zip(decoded(out), expected, strict=True))


def busy_stage_worker() -> psutil.Process | None:
    """An actor of one of the batch's pools while it is working on a row."""
    for proc in psutil.process_iter(["cmdline"]):
        if " ".join(proc.info["cmdline"] or []).startswith("ray::ChainActor.run"):
            return proc
    return None


def test_a_worker_killed_mid_segment_is_retried_and_the_job_completes(
    ray_cluster: str, tiny_weights: WeightsLayout, single_video: tuple[dict[str, str], list[np.ndarray]], tmp_path: Path
) -> None:
    """On split pools, as a GPU cluster runs them: the generator actor takes 3 segments at once and
    fills its batches (8 frames, segments of 10) across them, and the frames still equal `dub`'s."""
    inputs, expected = single_video
    out = tmp_path / "survived.mp4"
    manifest = write_manifest(tmp_path / "worker.jsonl", [{"job_id": "survived", **inputs, "output": str(out)}])
    driver = start_driver(manifest, tiny_weights, ray_cluster, "--pools", "split", "--batch-segments", "3")
    wait_for_segments(tmp_path / ".musedub-work" / "survived", 1, driver)
    deadline = time.monotonic() + 120
    while (victim := busy_stage_worker()) is None:
        assert driver.poll() is None and time.monotonic() < deadline, "no stage worker was busy to be killed"
        time.sleep(0.05)
    victim.kill()
    victim.wait(timeout=30)
    assert driver.wait(timeout=600) == 0
    report = json.loads((tmp_path / "survived.mp4.report.json").read_text())
    assert report["faces"]["ok"] == 50 and report["segments_reused"] == 0
    assert all(np.array_equal(a, b) for a, b in zip(decoded(out), expected, strict=True))
