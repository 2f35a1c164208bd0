"""Every command refuses careless and hostile input the same way: exit 2, an error naming the
input (one line, or one line per bad row of a manifest or catalogue), no traceback, no secret
printed, nothing written at the output, and the inputs byte-identical afterwards. In process: none of these
reaches a Ray cluster or loads a model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout

DATA = Path(__file__).resolve().parent.parent / "data"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
LEAKY = f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET}@bucket"  # a URI prefix carrying credentials


@dataclass(frozen=True)
class Case:
    argv: Callable[[Path, Path], list[str]]  # (inputs folder, weights) -> arguments; output under inputs/out
    message: str


def job(video: str = "in.mp4", audio: str = "speech.wav", output: str = "out/a.mp4", **extra: object) -> str:
    return json.dumps({"job_id": "a", "video": video, "audio": audio, "output": output, **extra})


def dub(*extra: str, video: str = "in.mp4", audio: str = "speech.wav", output: str = "out/a.mp4") -> Case:
    def argv(d: Path, w: Path) -> list[str]:
        files = [str(d / v) if "://" not in v else v for v in (video, audio, output)]
        return ["dub", "--video", files[0], "--audio", files[1], "--output", files[2], "--weights", str(w), *extra]

    return Case(argv, "")


def with_message(case: Case, message: str) -> Case:
    return Case(case.argv, message)


def file_case(name: str, content: str | bytes, command: Callable[[Path, Path, Path], list[str]], message: str) -> Case:
    """A command given a file written into the inputs folder first."""

    def argv(d: Path, w: Path) -> list[str]:
        path = d / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return command(path, d, w)

    return Case(argv, message)


CASES = {
    # dub
    "dub: missing video": with_message(dub(video="absent.mp4"), "absent.mp4"),
    "dub: text as audio": with_message(dub(audio="notes.txt"), "notes.txt is not a readable media file"),
    "dub: ftp output": with_message(dub(output="ftp://host/x.mp4"), "unsupported scheme 'ftp'"),
    "dub: credentials in output": with_message(dub(output="s3://K:S@b/x.mp4"), "s3://***@b/x.mp4"),
    "dub: crf out of range": with_message(dub("--crf", "99"), "--crf"),
    "dub: bad still fps": with_message(dub("--still-fps", "fast"), "frame rate 'fast'"),
    "dub: newline in a name": with_message(dub(video="in\nforged.mp4"), "control characters"),
    "dub: folder as video": with_message(dub(video="out"), "out"),
    "dub: unknown dtype": with_message(dub("--dtype", "fp8"), "--dtype 'fp8'"),
    "dub: speaker point outside 0..1": with_message(dub("--speaker", "1.5,0.5"), "'1.5,0.5': a point's x and y"),
    "dub: unknown speaker policy": with_message(dub("--speaker", "loudest"), "'loudest' is not a policy"),
    "dub: unknown generator": with_message(dub("--generator", "wav2lip"), "--generator: Input should be 'musetalk' or"),
    "dub: missing style reference": with_message(
        dub("--generator", "style", "--style-reference", "absent.mp4"), "style reference absent.mp4"
    ),
    # faces
    "faces: missing video": Case(
        lambda d, w: ["faces", str(d / "absent.mp4"), "--sheet", str(d / "out/s.png")], "absent"
    ),
    "faces: sheet not a png": Case(lambda d, w: ["faces", str(d / "in.mp4"), "--sheet", str(d / "out/s.jpg")], ".png"),
    "faces: credentials in the video": Case(lambda d, w: ["faces", f"{LEAKY}/v.mp4"], "s3://***@bucket/v.mp4"),
    # batch
    "batch: missing manifest": Case(lambda d, w: ["batch", str(d / "none.jsonl")], "none.jsonl"),
    "batch: unknown suffix": file_case("jobs.txt", job(), lambda p, d, w: ["batch", str(p)], "name it .yaml"),
    "batch: empty manifest": file_case("jobs.jsonl", "", lambda p, d, w: ["batch", str(p)], "has no jobs"),
    "batch: duplicate ids": file_case(
        "jobs.jsonl", job() + "\n" + job(output="out/b.mp4"), lambda p, d, w: ["batch", str(p)], "appears in more"
    ),
    "batch: parent steps": file_case(
        "jobs.jsonl", job(output="out/../../x.mp4"), lambda p, d, w: ["batch", str(p)], "contains '..'"
    ),
    "batch: job id with a slash": file_case(
        "jobs.jsonl", job().replace('"a"', '"a/b"'), lambda p, d, w: ["batch", str(p)], "job_id"
    ),
    "batch: unknown column": file_case(
        "jobs.jsonl", job(colour="red"), lambda p, d, w: ["batch", str(p)], "colour: Extra inputs"
    ),
    "batch: negative pool": file_case(
        "jobs.jsonl", job(), lambda p, d, w: ["batch", str(p), "--cpu-pool", "-1"], "--cpu-pool"
    ),
    "batch: not JSON": file_case("jobs.jsonl", "{oops", lambda p, d, w: ["batch", str(p)], "line 1: not JSON"),
    "batch: credentials in weights": file_case(
        "jobs.jsonl", job(), lambda p, d, w: ["batch", str(p), "--weights", "gs://u:p@b/w"], "gs://***@b/w"
    ),
    # catalog
    "catalog: missing catalogue": Case(
        lambda d, w: ["catalog", "plan", str(d / "none.csv"), "--output-prefix", str(d / "out")], "none.csv"
    ),
    "catalog: no title column": file_case(
        "titles.csv",
        "video,audio_es\nin.mp4,speech.wav\n",
        lambda p, d, w: ["catalog", "plan", str(p), "--output-prefix", str(d / "out")],
        "title_id",
    ),
    "catalog: bad speaker column": file_case(
        "titles.csv",
        "title_id,video,audio_es,speaker\nt1,in.mp4,speech.wav,track:first\n",
        lambda p, d, w: ["catalog", "plan", str(p), "--output-prefix", str(d / "out")],
        "'track:first' is not a policy",
    ),
    "catalog: unknown generator column": file_case(
        "titles.csv",
        "title_id,video,audio_es,generator\nt1,in.mp4,speech.wav,wav2lip\n",
        lambda p, d, w: ["catalog", "plan", str(p), "--output-prefix", str(d / "out")],
        "generator 'wav2lip' is not one of musetalk, style",
    ),
    "catalog: ftp prefix": file_case(
        "titles.csv",
        "title_id,video,audio_es\nt1,in.mp4,speech.wav\n",
        lambda p, d, w: ["catalog", "run", str(p), "--output-prefix", "ftp://h/out"],
        "unsupported scheme 'ftp'",
    ),
    # preprocess and index
    "preprocess: output inside the sources": Case(
        lambda d, w: ["preprocess", str(d), str(d / "out"), "--weights", str(w), "--landmarks", "dlib"],
        "inside the source folder",
    ),
    "preprocess: no videos": Case(
        lambda d, w: ["preprocess", str(d / "out"), str(d / "dataset"), "--weights", str(w), "--landmarks", "dlib"],
        "holds no videos",
    ),
    "preprocess: clips too short": Case(
        lambda d, w: ["preprocess", str(d), "s3://b/ds", "--min-clip-frames", "5", "--weights", str(w)],
        "--min-clip-frames",
    ),
    "preprocess: clip shorter than its minimum": Case(
        lambda d, w: ["preprocess", str(d), "s3://b/ds", "--clip-seconds", "0.2", "--weights", str(w)],
        "clip_seconds 0.2 holds fewer than min_clip_frames 25",
    ),
    "index: no dataset": Case(lambda d, w: ["index", str(d / "out")], "has no _sources/ records"),
    "index: ratio above one": Case(lambda d, w: ["index", str(d / "out"), "--ratio", "2"], "--ratio"),
    "index: window inside the exclusion": Case(
        lambda d, w: ["index", str(d / "out"), "--fallback-radius", "3"], "fallback_radius 3 must exceed exclusion 5"
    ),
    # eval
    "eval: missing manifest": Case(lambda d, w: ["eval", str(d / "none.jsonl")], "none.jsonl"),
    "eval: frames not a multiple of 16": file_case(
        "jobs.jsonl", job(), lambda p, d, w: ["eval", str(p), "--frames", "750"], "--frames: Value error, give 'all'"
    ),
    # weights and features
    "weights check: no folder": Case(lambda d, w: ["weights", "check", str(d / "none")], "musedub weights download"),
    "weights compose: no checkpoint": Case(
        lambda d, w: ["weights", "compose", str(w), str(d / "none"), str(d / "out" / "w")], "none"
    ),
    "features: zero fps": Case(
        lambda d, w: ["features", "audio", str(d / "speech.wav"), "--fps", "0", "-o", str(d / "out" / "p.npy")],
        "out of range",
    ),
    "features: reversed range": Case(
        lambda d, w: [
            "features",
            "audio",
            str(d / "speech.wav"),
            "--fps",
            "25",
            "--frames",
            "9:2",
            "--weights",
            str(w),
            "-o",
            str(d / "out" / "p.npy"),
        ],
        "frame range [9, 2)",
    ),
    # training and schemas
    "train: missing config": Case(lambda d, w: ["train", str(d / "none.yaml")], "none.yaml"),
    "train: unknown key": file_case(
        "train.yaml",
        "stage: 1\ndataset: d\noutput: o\nlearning_rat: 1\n",
        lambda p, d, w: ["train", str(p)],
        "learning_rat",
    ),
    "train: not YAML": file_case("train.yaml", "stage: [1\n", lambda p, d, w: ["train", str(p)], "train.yaml"),
    "schema: unknown name": Case(lambda d, w: ["schema", "everything"], "no schema called 'everything'"),
    "status: no such run": Case(lambda d, w: ["status", str(d / "out" / "run-1")], "no summary.json and no errors"),
    "batch: webhook without a secret": file_case(
        "jobs.jsonl",
        job(),
        lambda p, d, w: ["batch", str(p), "--webhook", "https://hooks.example.com/x"],
        "set MUSEDUB_WEBHOOK_SECRET",
    ),
    # credentials written into a URI, in every command: refused, printed redacted, never in full
    "dub: credentials in video": with_message(dub(video=f"{LEAKY}/v.mp4"), "s3://***@bucket/v.mp4"),
    "batch: speaker of the wrong type": file_case(
        "jobs.jsonl", job(speaker=[1]), lambda p, d, w: ["batch", str(p)], "speaker: Input should be a valid string"
    ),
    "batch: unknown generator in a row": file_case(
        "jobs.jsonl", job(generator="wav2lip"), lambda p, d, w: ["batch", str(p)], "generator: Input should be"
    ),
    "batch: style reference with credentials": file_case(
        "jobs.jsonl",
        job(generator="style", style_reference=f"{LEAKY}/ref.mp4"),
        lambda p, d, w: ["batch", str(p)],
        "s3://***@bucket",
    ),
    "batch: credentials in the manifest URI": Case(lambda d, w: ["batch", f"{LEAKY}/jobs.jsonl"], "s3://***@bucket"),
    "batch: credentials in every row": file_case(
        "jobs.jsonl", job(audio=f"{LEAKY}/a.wav"), lambda p, d, w: ["batch", str(p)], "no job can run"
    ),
    "catalog: credentials in the catalogue URI": Case(
        lambda d, w: ["catalog", "run", f"{LEAKY}/t.csv", "--output-prefix", str(d / "out")], "s3://***@bucket/t.csv"
    ),
    "catalog: credentials in every row": file_case(
        "titles.csv",
        f"title_id,video,audio_es\nt1,{LEAKY}/v.mp4,speech.wav\n",
        lambda p, d, w: ["catalog", "plan", str(p), "--output-prefix", str(d / "out")],
        "carries credentials",
    ),
    "preprocess: credentials in the sources": Case(
        lambda d, w: ["preprocess", f"{LEAKY}/src", str(d / "out" / "ds"), "--weights", str(w)], "s3://***@bucket/src"
    ),
    "index: credentials in the dataset": Case(lambda d, w: ["index", f"{LEAKY}/ds"], "s3://***@bucket/ds"),
    "eval: credentials in the report": file_case(
        "jobs.jsonl", job(), lambda p, d, w: ["eval", str(p), "--report", f"{LEAKY}/r.json"], "s3://***@bucket/r.json"
    ),
    "weights check: credentials": Case(lambda d, w: ["weights", "check", f"{LEAKY}/w"], "s3://***@bucket/w"),
    "train: credentials in the config URI": Case(lambda d, w: ["train", f"{LEAKY}/t.yaml"], "s3://***@bucket/t.yaml"),
    "features: credentials in the audio": Case(
        lambda d, w: ["features", "audio", f"{LEAKY}/a.wav", "--fps", "25", "-o", str(d / "out" / "p.npy")],
        "s3://***@bucket/a.wav",
    ),
}


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_cleanly(
    name: str, tmp_path: Path, tiny_weights: WeightsLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "inputs"
    (inputs / "out").mkdir(parents=True)
    (inputs / "in.mp4").write_bytes((DATA / "astronaut_25fps.mp4").read_bytes())
    (inputs / "speech.wav").write_bytes((DATA / "speech_16k.wav").read_bytes())
    (inputs / "notes.txt").write_text("not audio")
    case = CASES[name]
    argv = case.argv(inputs, tiny_weights.root)
    before = digests(inputs)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("musedub: error: "), err
    assert case.message in err, err
    assert "Traceback" not in out + err
    assert SECRET not in out + err and "AKIAIOSFODNN7EXAMPLE" not in out + err
    assert digests(inputs) == before  # inputs untouched, nothing new beside them
    assert not any((inputs / "out").iterdir())  # nothing partial at the output
