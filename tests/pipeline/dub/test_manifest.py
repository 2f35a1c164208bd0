"""Manifests in every format are read with row positions; a bad row is a job that fails alone (or,
with --strict, the whole file is refused up front)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musedub.jobs.cli import main
from musedub.pipeline.dub.manifest import ManifestError, load_manifest, manifest_schema, read_manifest

GOOD = [
    {"job_id": "a", "video": "in/a.mp4", "audio": "in/a.wav", "output": "/out/a.mp4"},
    {"job_id": "b", "video": "s3://bucket/b.mp4", "audio": "s3://bucket/b.wav", "output": "s3://out/b.mp4", "crf": 20},
]


def write(path: Path, rows: list[dict]) -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if path.suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif path.suffix == ".yaml":
        path.write_text("jobs:\n" + "".join("  - " + json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        path.write_text(",".join(keys) + "\n" + "".join(",".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows))
    else:
        pq.write_table(pa.table({k: [r.get(k) for r in rows] for k in keys}), path)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".yaml", ".csv", ".parquet"])
def test_every_format_reads_the_same_jobs(tmp_path: Path, suffix: str) -> None:
    jobs = load_manifest(str(write(tmp_path / f"m{suffix}", GOOD)))
    assert [j.job_id for j in jobs] == ["a", "b"]
    assert jobs[0].video == str(tmp_path / "in/a.mp4")  # relative to the manifest's folder
    assert jobs[1].video == "s3://bucket/b.mp4" and jobs[1].overrides() == {"crf": 20}


@pytest.mark.parametrize(
    ("suffix", "where"), [(".jsonl", "line"), (".yaml", "line"), (".csv", "line"), (".parquet", "row")]
)
def test_every_bad_row_is_reported_with_its_position(tmp_path: Path, suffix: str, where: str) -> None:
    rows = [
        GOOD[0],
        {"job_id": "a", "video": "v.mp4", "audio": "x.wav", "output": "/out/c.mp4"},  # duplicate job_id
        {"job_id": "d", "video": "v.mp4", "audio": "x.wav", "output": "/out/a.mp4"},  # same output as a
        {"job_id": "e", "video": "v.mp4", "audio": "x.wav", "output": "/out/../etc/e.mp4"},  # escapes
        {"job_id": "f", "video": "ftp://host/v.mp4", "audio": "x.wav", "output": "/out/f.mp4"},  # scheme
        {"job_id": "g", "video": "v.mp4", "output": "/out/g.mp4"},  # no audio
    ]
    with pytest.raises(ManifestError) as caught:
        load_manifest(str(write(tmp_path / f"m{suffix}", rows)), output_prefix="/out")
    text = str(caught.value)
    first = 2 if where == "line" else 1  # a header line or `jobs:` comes first
    if suffix == ".jsonl":
        first = 1
    at = [f"{where} {first + i}" for i in range(len(rows))]
    assert f"{at[1]}: job_id 'a' appears in more than one job" in text
    assert f"{at[2]}: output '/out/a.mp4' appears in more than one job" in text
    assert f"{at[3]}: output: output '/out/../etc/e.mp4' contains '..'" in text
    assert f"{at[4]}: video: video 'ftp://host/v.mp4' has unsupported scheme 'ftp'" in text
    assert f"{at[5]}: audio: Field required" in text
    assert "nothing was run" in text


def test_bad_rows_become_jobs_that_fail_alone_and_good_rows_still_run(tmp_path: Path) -> None:
    secret = "s3://AKIAEXAMPLE:hunter2secret@bucket/v.mp4"
    rows = [
        GOOD[0],
        {"job_id": "leaky", "video": secret, "audio": "a.wav", "output": "/out/l.mp4"},
        {"job_id": "twice", "video": "v.mp4", "audio": "a.wav", "output": "/out/t1.mp4"},
        {"job_id": "twice", "video": "v.mp4", "audio": "a.wav", "output": "/out/t2.mp4"},
        {"job_id": "no audio", "video": "v.mp4", "output": "/out/n.mp4"},
        {"job_id": ["a", "list"], "video": "v.mp4", "audio": "a.wav", "output": "/out/list.mp4"},
        GOOD[1],
    ]
    path = str(write(tmp_path / "m.jsonl", rows))
    manifest = read_manifest(path)
    assert [job.job_id for job in manifest.jobs] == ["a", "b"] and manifest.where == {"a": "line 1", "b": "line 7"}
    rejected = {row.job_id: row for row in manifest.rejected}
    assert list(rejected) == ["leaky", "@line-3", "@line-4", "@line-5", "@line-6"]  # no valid unique id: where it is
    message = rejected["leaky"].message(path)
    assert message.startswith(f"manifest {path} line 2: video: ") and "s3://***@bucket/v.mp4" in message
    assert "hunter2secret" not in repr(manifest.rejected) and "environment" in message
    assert "job_id 'twice' appears in more than one job" in rejected["@line-3"].message(path)
    assert "job_id: String should match pattern" in rejected["@line-5"].message(path)
    assert "audio: Field required" in rejected["@line-5"].message(path)
    assert "job_id: Input should be a valid string" in rejected["@line-6"].message(path)
    assert "\n" not in message


def test_a_bad_row_deep_in_a_large_manifest_is_found_without_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    blank = " " * 1000 + "\n"  # skipped, but counted as a line
    path.write_text(json.dumps(GOOD[0]) + "\n" + blank * 9997 + "{oops\n")  # 10 MB
    tracemalloc.start()
    try:
        manifest = read_manifest(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [job.job_id for job in manifest.jobs] == ["a"]
    assert [(row.where, row.problems[0][:8]) for row in manifest.rejected] == [("line 9999", "not JSON")]
    assert peak < path.stat().st_size / 10  # read line by line, never whole


def test_outputs_outside_the_prefix_and_the_cli_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path / "m.jsonl", GOOD)
    assert main(["batch", str(manifest), "--output-prefix", "s3://out", "--strict"]) == 2
    assert "line 1: output '/out/a.mp4' is outside the allowed prefix 's3://out'" in capsys.readouterr().err


def test_schema_describes_a_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == manifest_schema() and set(schema["required"]) == {"job_id", "video", "audio", "output"}
    jsonschema.validate(GOOD[1], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD[1], "crf": 99}, schema)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("huge.csv", b"job_id,video,audio,output\na," + b"x" * 200_000 + b",a.wav,o.mp4\n", "line 2: not CSV"),
        ("nested.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", "line 1: nested too deeply"),
        ("garbage.parquet", b"PAR1" + bytes(range(256)) * 40 + b"PAR1", "is not a readable Parquet file"),
        ("latin1.csv", "job_id,video,audio,output\nä,a.mp4,a.wav,o.mp4\n".encode("latin-1"), "is not UTF-8 text"),
        ("long.jsonl", json.dumps({**GOOD[0], "video": "v" * 5000}).encode(), "at most 4096 characters"),
        ("bad.yaml", b"jobs: [\n  {job_id: a", "is not valid YAML"),
    ],
)
def test_hostile_manifests_are_one_clear_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ManifestError) as caught:
        load_manifest(str(path))
    assert message in str(caught.value) and str(path) in str(caught.value)
