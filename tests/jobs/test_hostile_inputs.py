"""Hostile and careless inputs: inputs never overwritten, secrets never printed, outputs kept under
their prefix, no face said loudly, and the sizes and pixel formats that crashed native code. Each
refusal checks the exit code, one error line naming the input, no traceback, nothing at the
output and the inputs byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from musedub.infra.sample_media import face_frame, write_audio, write_clip
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
    done = musedub("batch", str(manifest), "--strict", cwd=tmp_path)  # without --strict: test_batch.py
    printed = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in printed and "nothing was run" in done.stderr
    assert "line 2: video: " in done.stderr and "s3://***@bucket/in.mp4" in done.stderr  # one line per bad row
    assert SECRET not in printed
    assert not (tmp_path / "good.mp4").exists() and not (tmp_path / ".musedub-runs").exists()


def test_an_output_escaping_the_prefix_is_refused_however_it_is_spelt(
    tmp_path: Path, inputs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
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
    code = main(["batch", str(manifest), "--output-prefix", str(prefix), "--strict"])
    done = subprocess.CompletedProcess([], code, *capsys.readouterr())
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "line 1: output" in done.stderr and "contains '..'" in done.stderr  # `#` no longer hides it
    for line in ("line 2", "line 3"):
        assert f"{line}: output" in done.stderr and "outside the allowed prefix" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "jobs.jsonl", "speech.wav"]


def test_a_video_with_no_face_fails_loudly_in_dub_as_in_batch(
    tmp_path: Path, tiny_weights: WeightsLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_clip(tmp_path / "nobody.mp4", Fraction(25), 10, faceless=range(10))
    audio = write_audio(tmp_path / "speech.wav", np.zeros(16000, np.float32), 16000)
    out = tmp_path / "out.mp4"
    args = ["dub", "--video", str(video), "--audio", str(audio), "--output", str(out)]
    code = main([*args, "--weights", str(tiny_weights.root), "--landmarks", "dlib"])
    done = subprocess.CompletedProcess(args, code, *capsys.readouterr())
    assert_one_line_error(done, "nobody.mp4: no face found in any frame")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nobody.mp4", "speech.wav"]


def encode_talking_face(path: Path, size: tuple[int, int], pix_fmt: str, rotation: int = 0) -> Path:
    """10 frames of the astronaut upright at `size` in `pix_fmt` (H.264; 4:4:4 and 10-bit included);
    with `rotation`, stored turned and marked with display-matrix metadata, as phones record."""
    turns = round(rotation / 90) % 4
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size if turns % 2 == 0 else size[::-1]
        stream.pix_fmt = pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(10):
            upright = face_frame(i / 25, size, scale=size[1] / 240)
            stored = np.ascontiguousarray(np.rot90(upright, k=-turns))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            for packet in stream.encode(frame.reformat(format=pix_fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("size", "pix_fmt", "rotation"),
    [
        ((480, 854), "yuv420p", 90),  # a phone's portrait video: decoded 854 wide (padded rows), then turned
        ((577, 769), "yuv444p", 0),
        ((642, 362), "yuv422p", 0),
        ((321, 241), "yuv444p10le", 0),
    ],
)
def test_common_sizes_pixel_formats_and_rotations_dub_end_to_end(
    tmp_path: Path, tiny_weights: WeightsLayout, speech: np.ndarray, size: tuple[int, int], pix_fmt: str, rotation: int
) -> None:
    video = encode_talking_face(tmp_path / "in.mp4", size, pix_fmt, rotation)
    audio = write_audio(tmp_path / "speech.wav", speech[:16000], 16000)
    before = digest(video)
    out = tmp_path / "out.mp4"
    args = ["dub", "--video", str(video), "--audio", str(audio), "--output", str(out), "--landmarks", "dlib"]
    assert main([*args, "--weights", str(tiny_weights.root)]) == 0
    report = json.loads((tmp_path / "out.mp4.report.json").read_text())
    assert report["faces"]["ok"] == 25  # found upright in every frame (1 s of audio cycles 10 frames)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (size[0] + size[0] % 2, size[1] + size[1] % 2)  # yuv420p: even
    assert digest(video) == before
