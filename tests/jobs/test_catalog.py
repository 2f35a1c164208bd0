"""`musedub catalog` against moto S3 and a 2-CPU local Ray cluster with tiny weights: a
catalogue of 3 titles x 2 languages planned and dubbed, a second run that does nothing, and two
runs started together that dub a job once."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from musedub.infra.sample_media import write_audio, write_clip
from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout

pytestmark = pytest.mark.slow  # end to end on the shared Ray cluster (and S3)

FLAGS = ["--landmarks", "dlib", "--device", "cpu", "--length-policy", "trim-audio"]


def put_catalog(s3, bucket: str, rows: list[dict[str, str]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, ["title_id", "video", "audio_es", "audio_fr"])
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(Bucket=bucket, Key="catalog.csv", Body=text.getvalue().encode())
    return f"s3://{bucket}/catalog.csv"


def run_records(s3, bucket: str) -> list[dict]:
    """The run records (`runs/T-ID.json`); each run's errors table and summary sit in `runs/T-ID/`."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dub/.musedub-catalog/runs/", Delimiter="/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed]


def dubbed(record: dict) -> set[str]:
    return {job["job_id"] for job in record["jobs"] if job["status"] == "done"}


def test_catalog_dubs_what_is_new_or_stale_once(
    ray_cluster: str,
    tiny_weights: WeightsLayout,
    clip_dir: Path,
    speech: np.ndarray,
    s3_bucket: str,
    tmp_path: Path,
    capsys,
) -> None:
    import boto3

    s3 = boto3.client("s3")
    clip = write_clip(clip_dir / "catalog.mp4", Fraction(25), 10)  # 0.4 s: one short segment per job
    for title in ("t1", "t2", "t3"):
        s3.upload_file(str(clip), s3_bucket, f"src/{title}.mp4")
    for i, name in enumerate(("t1-es", "t1-fr", "t2-es", "t2-fr", "t3-es")):
        wav = write_audio(tmp_path / f"{name}.wav", speech[8000 * i : 8000 * i + 8000], 16000)
        s3.upload_file(str(wav), s3_bucket, f"audio/{name}.wav")
    root = f"s3://{s3_bucket}"
    args = ["--output-prefix", f"{root}/dub", "--weights", str(tiny_weights.root), *FLAGS]

    def row(title: str, es: bool, fr: bool) -> dict[str, str]:
        audio = {lang: f"{root}/audio/{title}-{lang}.wav" if has else "" for lang, has in (("es", es), ("fr", fr))}
        return {"title_id": title, "video": f"{root}/src/{title}.mp4", "audio_es": audio["es"], "audio_fr": audio["fr"]}

    # yesterday: t1 in both languages and t2 in Spanish were dubbed
    catalog = put_catalog(s3, s3_bucket, [row("t1", True, True), row("t2", True, False)])
    assert main(["catalog", "run", catalog, *args]) == 0
    s3.head_object(Bucket=s3_bucket, Key="dub/t1/es.mp4.preview.html")  # the nightly run's previews, on by default
    args.append("--no-preview")  # looked at once
    # today: t2's Spanish audio was re-delivered, t2 got French, t3 arrived without its French dub
    s3.put_object(Bucket=s3_bucket, Key="audio/t2-es.wav", Body=(tmp_path / "t1-fr.wav").read_bytes())
    catalog = put_catalog(s3, s3_bucket, [row("t1", True, True), row("t2", True, True), row("t3", True, False)])
    capsys.readouterr()
    assert main(["catalog", "plan", catalog, *args[:4], "--landmarks", "dlib", "--length-policy", "trim-audio"]) == 0
    printed = capsys.readouterr()
    assert "titles 3, languages 2, to do 3, new 2, stale 1, up to date 2, missing input 1" in printed.out
    assert "[t2.es] stale: audio changed" in printed.err
    manifest = printed.out.strip().splitlines()[-1].split(" to ")[-1]
    planned = s3.get_object(Bucket=s3_bucket, Key=manifest.removeprefix(f"{root}/"))["Body"].read().decode()
    assert {json.loads(line)["job_id"] for line in planned.splitlines()} == {"t2.es", "t2.fr", "t3.es"}

    assert main(["catalog", "run", catalog, *args]) == 0
    assert main(["catalog", "run", catalog, *args]) == 0  # nothing left: dubs nothing
    records = sorted(run_records(s3, s3_bucket), key=lambda r: r["started"])
    assert [dubbed(r) for r in records] == [{"t1.es", "t1.fr", "t2.es"}, {"t2.es", "t2.fr", "t3.es"}, set()]
    assert records[1]["plan"]["missing input"] == 1 and records[2]["plan"]["to do"] == 0
    for job in ("t1/es", "t1/fr", "t2/es", "t2/fr", "t3/es"):
        s3.head_object(Bucket=s3_bucket, Key=f"dub/{job}.mp4.report.json")

    # two runs started together (t3's French arrives): one dubs it, the other dubs nothing
    s3.upload_file(str(tmp_path / "t2-fr.wav"), s3_bucket, "audio/t3-fr.wav")
    catalog = put_catalog(s3, s3_bucket, [row("t1", True, True), row("t2", True, True), row("t3", True, True)])
    command = [sys.executable, "-m", "musedub.jobs.cli", "catalog", "run", catalog, *args, "--address", ray_cluster]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    together = sorted(run_records(s3, s3_bucket), key=lambda r: r["started"])[3:]
    assert len(together) == 2
    assert sorted(len(dubbed(r)) for r in together) == [0, 1] and set().union(*map(dubbed, together)) == {"t3.fr"}
