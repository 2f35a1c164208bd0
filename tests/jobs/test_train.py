"""Training data to a dubbing checkpoint on a 2-CPU local Ray cluster: preprocess -> index ->
train-syncnet -> 12 steps of stage 1 (2 DDP workers, one killed after step 6) -> 8 of stage 2 with that
SyncNet -> `weights compose` -> `musedub dub`.

The dataset lives on a real S3 endpoint (moto on loopback); the sources are the astronaut
clip with real speech, one with a shot of no face, and two sources that must fail on their own.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import boto3
import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import s3fs
import torch
import yaml
from media_checks import decoded

from musedub.infra.sample_media import write_clip
from musedub.jobs.cli import main
from musedub.models.syncnet import SyncNet
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.core.errors import ERRORS_SCHEMA
from musedub.pipeline.dataset.tables import CLIP_SCHEMA, SCHEMAS, source_id
from musedub.pipeline.train.run import TRAIN_CLIP_COLUMNS

pytestmark = pytest.mark.slow  # end to end on the shared Ray cluster (and S3)


def tree(fs: s3fs.S3FileSystem, root: str) -> dict[str, str]:
    """Every object under `root` with its ETag and modification time."""
    fs.invalidate_cache()
    return {p: f"{i['ETag']}@{i['LastModified']}" for p, i in fs.find(root, detail=True).items()}


def registered(run: Path, checkpoint: str) -> bool:
    """Ray Train lists a checkpoint in its snapshot once the controller has taken the report."""
    try:
        snapshot = json.loads((run / "checkpoint_manager_snapshot.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not there yet, or being rewritten
        return False
    return any(r["checkpoint_dir_name"] == checkpoint for r in snapshot["checkpoint_results"])


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, speech: np.ndarray) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    (folder / "show").mkdir()
    write_clip(
        folder / "show" / "a.mp4",
        Fraction(30),
        120,
        (512, 384),
        scale=2.2,
        faceless=range(50, 60),
        audio=speech[: 4 * 16000],
    )
    write_clip(folder / "b.mov", Fraction(25), 60, (512, 384), scale=2.4, audio=speech[16000 : 4 * 16000])
    write_clip(folder / "mute.mp4", Fraction(25), 30, (512, 384), scale=2.2)
    (folder / "broken.mkv").write_bytes(b"\x1aE\xdf\xa3 not really a matroska file")
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_preprocess_index_train_and_dub(
    ray_cluster: str,
    s3_bucket: str,
    sources: Path,
    training_weights: WeightsLayout,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    weights = tmp_path / "weights"  # its syncnet/ is replaced by the one trained below
    shutil.copytree(training_weights.root, weights)
    dataset = f"s3://{s3_bucket}/dataset"
    flags = ["--weights", str(weights), "--landmarks", "dlib", "--address", ray_cluster]

    assert main(["preprocess", str(sources), dataset, *flags]) == 0
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert "preprocess: 4/4 sources, 2 failed" in captured.err  # progress on stderr, fed by the run
    report = body["this_run"]
    assert report["sources"] == 4 and report["failed"] == 2
    assert set(report["errors"]) == {str(sources / "broken.mkv"), str(sources / "mute.mp4")}
    assert "no audio stream" in report["errors"][str(sources / "mute.mp4")]
    assert report["frames_dropped"]["no_face"] >= 5  # the faceless shot
    assert report["clips"] == 3  # a.mp4: two shots around the faceless one; b.mov: one

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": boto3.client("s3").meta.endpoint_url})
    clips = pq.read_table(f"{s3_bucket}/dataset/clips", filesystem=fs, partitioning=None).to_pylist()
    assert sorted(c["frames"] for c in clips) == sorted([42, 50, 60])
    for clip in clips:
        n = clip["frames"]
        assert len(clip["landmarks"]) == n * 68 * 2 and len(clip["audio"]) == n * 640
        assert clip["whisper_shape"] == [2 * n + 8, 5, 64]
        assert "static_mouth" in clip["flags"]  # a photo does not speak
    errors_table = pq.read_table(f"{s3_bucket}/dataset/_runs/{body['run_id']}/errors", filesystem=fs)
    assert errors_table.schema.remove_metadata().equals(ERRORS_SCHEMA)
    errors = errors_table.to_pylist()
    assert sorted((e["stage"], e["error_class"]) for e in errors) == [("PreprocessSource", "InputError")] * 2
    assert {e["item_id"] for e in errors} == {source_id("broken.mkv"), source_id("mute.mp4")}

    before = tree(fs, f"{s3_bucket}/dataset")
    assert main(["preprocess", str(sources), dataset, *flags]) == 0
    assert json.loads(capsys.readouterr().out)["this_run"]["sources"] == 0
    assert tree(fs, f"{s3_bucket}/dataset") == before  # nothing new written

    assert main(["index", dataset, "--address", ray_cluster]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["indexed"] == 2
    assert "index: 2/2 sources, 0 failed" in captured.err
    fs.invalidate_cache()
    sis = pq.read_table(f"{s3_bucket}/dataset/sis", filesystem=fs, partitioning=None)
    assert sis.num_rows == 42 + 50 + 60
    for name, schema in SCHEMAS.items():  # every table the dataset holds, as its owner declares it
        table = pq.read_table(f"{s3_bucket}/dataset/{name}", filesystem=fs, partitioning=None)
        assert table.schema.remove_metadata().equals(schema), name
    assert set(TRAIN_CLIP_COLUMNS) <= set(CLIP_SCHEMA.names)

    runs = tmp_path / "runs"
    syncnet_config = tmp_path / "syncnet.yaml"
    syncnet_config.write_text(
        yaml.safe_dump(
            {
                "dataset": dataset,
                "output": str(runs),
                "run_name": "sync",
                "size": "tiny",
                "steps": 4,
                "batch_size": 2,
                "checkpoint_every": 4,
                "cpus_per_worker": 0.5,
                "samples_per_clip": 2,
            }
        )
    )
    assert main(["train-syncnet", str(syncnet_config), "--address", ray_cluster]) == 0
    captured = capsys.readouterr()
    assert "loss" in captured.out and "train-syncnet: 4/4 steps" in captured.err  # rank 0's posts reached the driver
    trained_syncnet = runs / "sync" / "step-00000004" / "syncnet"
    SyncNet.from_pretrained(trained_syncnet)  # loads strictly
    shutil.rmtree(weights / "syncnet")
    shutil.copytree(trained_syncnet, weights / "syncnet")  # stage 2's sync loss uses it
    common = {
        "dataset": dataset,
        "output": str(runs),
        "weights": str(weights),
        "steps": 12,
        "batch_size": 1,
        "grad_accum": 1,
        "lr": 1e-3,
        "min_face": 150,
        "checkpoint_every": 6,
        "num_workers": 2,
        "cpus_per_worker": 0.5,
        "samples_per_clip": 2,
    }
    stage1 = tmp_path / "stage1.yaml"
    stage1.write_text(yaml.safe_dump({**common, "stage": 1, "run_name": "s1"}))
    with ThreadPoolExecutor(1) as pool:  # kill a DDP worker once Ray Train has registered step 6
        run = pool.submit(main, ["train", str(stage1), "--address", ray_cluster])
        deadline = time.monotonic() + 400
        while not registered(runs / "s1", "step-00000006"):
            assert not run.done() and time.monotonic() < deadline, "stage 1 never wrote its step-6 checkpoint"
            time.sleep(0.5)
        workers = [p for p in psutil.process_iter(["cmdline"]) if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]
        assert workers, "no Ray Train worker to kill"
        workers[0].kill()
        assert run.result(timeout=600) == 0
    captured = capsys.readouterr()
    assert "step-00000012" in captured.out and "train: 12/12 steps" in captured.err
    checkpoint1 = runs / "s1" / "step-00000012"
    assert (checkpoint1 / "musetalkV15" / "unet.pth").is_file()
    state = torch.load(checkpoint1 / "train_state.pt", weights_only=True)
    assert state["step"] == 12 and state["starts"] == [0, 6]  # restarted from the step-6 checkpoint

    stage2 = tmp_path / "stage2.yaml"
    stage2.write_text(
        yaml.safe_dump(
            {
                **common,
                "stage": 2,
                "run_name": "s2",
                "steps": 4,
                "checkpoint_every": 4,
                "unet_from": str(checkpoint1),
                "gan_start": 2,
                "discriminator_width": 8,
            }
        )
    )
    assert main(["train", str(stage2), "--address", ray_cluster]) == 0
    metrics = capsys.readouterr().out
    assert "gan_face" in metrics and "sync" in metrics and "discriminator" in metrics
    checkpoint2 = runs / "s2" / "step-00000004"

    composed = tmp_path / "trained-weights"
    assert main(["weights", "compose", str(weights), str(checkpoint2), str(composed)]) == 0
    output = tmp_path / "dubbed.mp4"
    assert (
        main(
            [
                "dub",
                "--video",
                str(sources / "b.mov"),
                "--audio",
                str(sources / "b.mov"),
                "--output",
                str(output),
                "--weights",
                str(composed),
                "--landmarks",
                "dlib",
            ]
        )
        == 0
    )
    assert len(decoded(output)) >= 60  # the output follows the audio (3 s)
