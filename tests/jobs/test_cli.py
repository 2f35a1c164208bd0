"""The `musedub` command: weights and audio features end to end, and one-line errors for bad input."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from musedub.jobs.cli import main
from musedub.models.audio_encoder import WhisperAudioEncoder
from musedub.models.style_predictor import TINY_STYLE_PREDICTOR_CONFIG, StylePredictor
from musedub.models.style_renderer import TINY_STYLE_RENDERER_CONFIG, StyleRenderer
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.audio.prompts import AudioPrompter


@pytest.mark.slow
def test_console_script_init_random_then_features(tmp_path: Path, speech_path: Path, speech: np.ndarray) -> None:
    binary = shutil.which("musedub")
    assert binary, "the musedub console script is not installed: pip install -e ."
    weights, out = tmp_path / "w", tmp_path / "prompts.npy"
    assert main(["weights", "init-random", "--tiny", str(weights)]) == 0  # the script is tried below
    assert (weights / "RANDOM_WEIGHTS.txt").is_file()
    assert StylePredictor.from_pretrained(WeightsLayout(weights).style).config == TINY_STYLE_PREDICTOR_CONFIG
    assert StyleRenderer.from_pretrained(WeightsLayout(weights).style).config == TINY_STYLE_RENDERER_CONFIG
    done = subprocess.run(
        [
            binary,
            "features",
            "audio",
            str(speech_path),
            "--fps",
            "25",
            "--weights",
            str(weights),
            "-o",
            str(out),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "RANDOM" in done.stderr  # loading random weights is never silent
    prompts = np.load(out)
    assert prompts.shape == (215, 50, 64) and prompts.dtype == np.float32
    expected = AudioPrompter(WhisperAudioEncoder.from_pretrained(weights / "whisper")).for_waveform(
        speech, Fraction(25)
    )
    np.testing.assert_array_equal(prompts, expected)


def test_frame_range_option(tmp_path: Path, speech_path: Path, tiny_weights: WeightsLayout) -> None:
    out = tmp_path / "part.npy"
    args = ["features", "audio", str(speech_path), "--fps", "30000/1001", "--weights", str(tiny_weights.root)]
    assert main([*args, "-o", str(out), "--frames", "250:", "--device", "cpu"]) == 0
    assert np.load(out).shape == (7, 50, 64)  # 257 frames at 29.97


def run_failing(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("musedub: error: ")
    return err[-1]


@pytest.mark.parametrize(
    ("audio_name", "fps", "frames", "expected"),
    [
        ("absent.wav", "25", None, "does not exist"),
        ("noise.wav", "25", None, "not a readable media file"),
        ("speech", "fast", None, "frame rate 'fast' is not a number"),
        ("speech", "25", "5:1", "outside the audio's 215 frames"),
        ("speech", "25", "x:y", "is not A:B"),
        ("speech", "25", "10", "needs a colon"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_output(
    tmp_path: Path,
    speech_path: Path,
    tiny_weights: WeightsLayout,
    capsys: pytest.CaptureFixture[str],
    audio_name: str,
    fps: str,
    frames: str | None,
    expected: str,
) -> None:
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(1).bytes(4096))
    audio = str(speech_path) if audio_name == "speech" else str(tmp_path / audio_name)
    out = tmp_path / "out" / "prompts.npy"
    args = ["features", "audio", audio, "--fps", fps, "--weights", str(tiny_weights.root), "-o", str(out)]
    message = run_failing(args + (["--frames", frames] if frames else []), capsys)
    assert expected in message
    assert not out.exists() and not (tmp_path / "out").exists()


def test_missing_weights_say_how_to_get_them(
    tmp_path: Path, speech_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.npy"
    message = run_failing(
        ["features", "audio", str(speech_path), "--fps", "25", "--weights", str(tmp_path / "none"), "-o", str(out)],
        capsys,
    )
    assert "musedub weights download" in message and "init-random --tiny" in message
    assert not out.exists()


def test_unknown_output_scheme(tmp_path: Path, speech_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = run_failing(["features", "audio", str(speech_path), "--fps", "25", "-o", "ftp://h/p.npy"], capsys)
    assert "unsupported scheme 'ftp'" in message


def test_weights_check(tiny_weights: WeightsLayout, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "check", str(tiny_weights.root)]) == 0
    out = capsys.readouterr().out
    assert "all models load (RANDOM weights)" in out and "style renderer: 0.19 M parameters" in out


def test_download_without_network_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # the hub reads HF_HUB_OFFLINE once, at import (long done by now): set what it read
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    message = run_failing(["weights", "download", str(tmp_path / "w")], capsys)
    assert "cannot fetch musetalkV15/musetalk.json from TMElyralab/MuseTalk" in message
    assert not (tmp_path / "w").exists()


def test_usage_errors_exit_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "audio"]) == 2
    assert main(["no-such-command"]) == 2


def test_catalog_bad_input_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dubbed"
    assert main(["catalog", "plan", str(tmp_path / "missing.csv"), "--output-prefix", str(out)]) == 2
    assert "missing.csv" in capsys.readouterr().err
    bad = tmp_path / "catalog.csv"
    bad.write_text("title_id,video,audio_es\nt 1,/v.mp4,/a.wav\n")
    assert main(["catalog", "run", str(bad), "--output-prefix", str(out)]) == 2
    err = capsys.readouterr().err
    assert "musedub: error: catalogue" in err and "line 2: title_id 't 1'" in err
    assert main(["catalog", "plan", str(bad), "--output-prefix", "ftp://host/out"]) == 2
    assert "unsupported scheme 'ftp'" in capsys.readouterr().err
    assert not out.exists()  # nothing written, no lease taken


def test_training_commands_refuse_bad_input_in_one_line(
    tmp_path: Path, training_weights: WeightsLayout, tiny_weights: WeightsLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any cluster starts: a folder without videos, a non-dataset, a bad config, missing VGG19."""
    (tmp_path / "empty").mkdir()
    cases = [
        (
            [
                "preprocess",
                str(tmp_path / "empty"),
                str(tmp_path / "out"),
                "--landmarks",
                "dlib",
                "--weights",
                str(training_weights.root),
            ],
            "holds no videos",
        ),
        (
            [
                "preprocess",
                str(tmp_path),
                str(tmp_path / "inside"),
                "--landmarks",
                "dlib",
                "--weights",
                str(training_weights.root),
            ],
            "inside the source folder",
        ),
        (["index", str(tmp_path / "empty")], "musedub preprocess"),
        (["eval", str(tmp_path / "none.jsonl"), "--weights", str(training_weights.root)], "none.jsonl"),
    ]
    config = tmp_path / "train.yaml"
    config.write_text(f"stage: 1\ndataset: {tmp_path / 'empty'}\noutput: {tmp_path / 'runs'}\nlr: -1\n")
    cases.append((["train", str(config)], "lr"))
    config2 = tmp_path / "train2.yaml"
    config2.write_text(f"stage: 1\ndataset: {tmp_path / 'empty'}\noutput: o\nweights: {tiny_weights.root}\n")
    cases.append((["train", str(config2)], "vgg19-dcbb9e9d.pth"))
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("musedub: error: ") and expected in err, (argv, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
