"""Hostile and careless inputs: inputs never overwritten, secrets never printed, outputs kept under
their prefix. Each case checks the exit code, one error line naming the input, no traceback,
nothing at the output and the inputs byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout

DATA = Path(__file__).resolve().parent.parent / "data"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def musedub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, so every byte it prints (logs included) is seen."""
    command = [sys.executable, "-m", "musedub.jobs.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    printed = done.stdout + done.stderr
    assert done.returncode == 2, printed
    errors = [line for line in done.stderr.splitlines() if line.startswith("musedub: error:")]
    assert len(errors) == 1, printed
    assert "Traceback" not in printed
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    video, audio = tmp_path / "in.mp4", tmp_path / "speech.wav"
    video.write_bytes((DATA / "astronaut_25fps.mp4").read_bytes())
    audio.write_bytes((DATA / "speech_16k.wav").read_bytes())
    return video, audio


@pytest.mark.parametrize(
    ("output", "what"),
    [
        ("in.mp4", "video"),
        ("./sub/../in.mp4", "video"),
        ("link.mp4", "video"),
        ("file://{tmp}/in.mp4", "video"),
        ("hard.mp4", "video"),
        ("speech.wav", "dub audio"),
        ("in.mp4.report.json", None),  # the report would land on an input: refused as well
    ],
)
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(
    tmp_path: Path,
    inputs: tuple[Path, Path],
    tiny_weights: WeightsLayout,
    output: str,
    what: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    video, audio = inputs
    (tmp_path / "link.mp4").symlink_to(video)
    (tmp_path / "hard.mp4").hardlink_to(video)
    if output == "in.mp4.report.json":
        video = tmp_path / "in.mp4.report.json"  # an input whose name is another output's report
        video.write_bytes(inputs[0].read_bytes())
        output = "in.mp4"
    before = {p: digest(p) for p in (video, audio)}
    listing = sorted(tmp_path.iterdir())
    target = output.format(tmp=tmp_path)
    args = [
        "dub",
        "--video",
        str(video),
        "--audio",
        str(audio),
        "--output",
        target,
        "--weights",
        str(tiny_weights.root),
    ]
    monkeypatch.chdir(tmp_path)  # in process: nothing here is secret, and it is 10x faster
    code = main([*args, "--landmarks", "dlib"])
    done = subprocess.CompletedProcess(args, code, *capsys.readouterr())
    assert_one_line_error(done, "write the dub to another path", f"is the {what or 'video'} itself")
    assert {p: digest(p) for p in (video, audio)} == before
    assert sorted(tmp_path.iterdir()) == listing  # nothing written beside them


def test_credentials_in_a_uri_are_refused_and_never_printed(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    video, audio = inputs
    secret_uri = f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET}@bucket/in.mp4"
    done = musedub("dub", "--video", secret_uri, "--audio", str(audio), "--output", "out.mp4", cwd=tmp_path)
    assert_one_line_error(done, "s3://***@bucket/in.mp4", "environment")
    assert SECRET not in done.stdout + done.stderr and "AKIAIOSFODNN7EXAMPLE" not in done.stdout + done.stderr

    manifest = tmp_path / "jobs.jsonl"
    good = {"job_id": "good", "video": str(video), "audio": str(audio), "output": str(tmp_path / "good.mp4")}
    bad = {**good, "job_id": "bad", "video": secret_uri, "output": str(tmp_path / "bad.mp4")}
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    done = musedub("batch", str(manifest), cwd=tmp_path)
    printed = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in printed and "nothing was run" in done.stderr
    assert "line 2: video: " in done.stderr and "s3://***@bucket/in.mp4" in done.stderr  # one line per bad row
    assert SECRET not in printed
    assert not (tmp_path / "good.mp4").exists() and not (tmp_path / ".musedub-runs").exists()


def test_an_output_escaping_the_prefix_is_refused_however_it_is_spelt(
    tmp_path: Path, inputs: tuple[Path, Path]
) -> None:
    video, audio = inputs
    prefix = tmp_path / "out"
    rows = [
        {"job_id": "hash", "output": f"{prefix}/#/../../escape.mp4"},
        {"job_id": "sibling", "output": f"{prefix}2/x.mp4"},
        {"job_id": "fileuri", "output": f"file://{tmp_path}/elsewhere.mp4"},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps({**r, "video": str(video), "audio": str(audio)}) + "\n" for r in rows))
    done = musedub("batch", str(manifest), "--output-prefix", str(prefix), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "line 1: output" in done.stderr and "contains '..'" in done.stderr  # `#` no longer hides it
    for line in ("line 2", "line 3"):
        assert f"{line}: output" in done.stderr and "outside the allowed prefix" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "jobs.jsonl", "speech.wav"]
