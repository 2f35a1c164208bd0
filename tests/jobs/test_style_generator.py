"""`dub --generator style` and `batch` with it, end to end on a real face with real speech and
tiny random weights (the style models `weights init-random` writes): a valid video, a batch
frame-identical to `dub`, and bad style references refused in one line with nothing written."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_checks import decoded, psnr

from musedub.infra.sample_media import write_clip
from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.face.crop_geometry import crop_box
from musedub.pipeline.face.track import FaceTracker
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono

STYLE = ["--generator", "style", "--style-steps", "1"]
ARGS = ["--landmarks", "dlib", "--device", "cpu", "--length-policy", "trim-audio", "--segment-seconds", "0.6"]
FACELESS = range(20, 28)


def dub(weights: WeightsLayout, video: Path, audio: Path, output: Path, *extra: str) -> int:
    files = ("--video", str(video), "--audio", str(audio), "--output", str(output))
    return main(["dub", *files, "--weights", str(weights.root), *ARGS, *STYLE, *extra])


@pytest.fixture(scope="module")
def style_dub(
    tiny_weights: WeightsLayout, clip_dir: Path, short_speech: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A 1.6 s talking clip with 8 faceless frames, dubbed in process -> (clip, output)."""
    voice = decode_audio_16k_mono(str(short_speech))
    clip = write_clip(clip_dir / "style_source.mp4", Fraction(25), 40, faceless=FACELESS, audio=voice[::-1].copy())
    out = tmp_path_factory.mktemp("style") / "dubbed.mp4"
    assert dub(tiny_weights, clip, short_speech, out) == 0
    return clip, out


@pytest.mark.slow
def test_style_dub_is_a_valid_video_that_changes_only_the_mouth(style_dub: tuple[Path, Path], dlib_detector) -> None:
    clip, out = style_dub
    frames, source = decoded(out), decoded(clip)
    assert len(frames) == 40
    with av.open(str(out)) as container:
        assert Fraction(container.streams.video[0].average_rate) == 25
        assert container.streams.audio[0].codec_context.name == "aac"
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["options"]["generator"] == "style" and report["options"]["style_steps"] == 1
    assert report["faces"]["ok"] == 32 and report["faces"]["no_face"] == 8
    assert report["seconds"]["StyleReference"] > 0 and report["models"]["generator"] == "style"
    reference = report["speakers"]["style_reference"]
    assert reference["from"].startswith("the source") and all(f["frames"] > 0 for f in reference["faces"].values())
    for i in FACELESS:
        assert psnr(frames[i], source[i]) > 40, f"faceless frame {i} changed"
    track = FaceTracker(dlib_detector).track(source)
    kept, original, mouth = [], [], []
    for i in [i for i in range(40) if i not in FACELESS]:
        box = crop_box(track.landmarks[i], source[i].shape[0])
        assert box is not None
        keep = np.ones(source[i].shape[:2], bool)
        keep[(box.y1 + box.y2) // 2 : box.y2, box.x1 : box.x2] = False  # the lower half of the face box
        kept.append(frames[i][keep])
        original.append(source[i][keep])
        mouth.append(psnr(frames[i][~keep], source[i][~keep]))
    assert psnr(np.concatenate(kept), np.concatenate(original)) > 40  # the upper face and the rest: untouched
    assert min(mouth) < 40  # the mouth is generated


@pytest.mark.slow
def test_a_style_batch_makes_the_frames_dub_makes(
    ray_cluster: str, tiny_weights: WeightsLayout, style_dub: tuple[Path, Path], short_speech: Path, tmp_path: Path
) -> None:
    clip, single = style_dub
    job = {"job_id": "styled", "video": str(clip), "audio": str(short_speech), "output": str(tmp_path / "b.mp4")}
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({**job, "generator": "style", "style_steps": 1}) + "\n")
    assert main(["batch", str(manifest), "--weights", str(tiny_weights.root), *ARGS, "--no-preview"]) == 0
    report = json.loads((tmp_path / "b.mp4.report.json").read_text())
    assert report["segments"] == 3 and report["options"]["generator"] == "style"
    assert all(np.array_equal(a, b) for a, b in zip(decoded(tmp_path / "b.mp4"), decoded(single), strict=True))


def reference_clip(folder: Path, kind: str, voice: np.ndarray) -> Path:
    if kind == "no face":
        return write_clip(folder / "empty.mp4", Fraction(25), 30, faceless=range(30), audio=voice)
    if kind == "too short":
        return write_clip(folder / "short.mp4", Fraction(25), 10, audio=voice)
    if kind == "no audio":
        return write_clip(folder / "mute.mp4", Fraction(25), 30)
    (folder / "notes").mkdir()
    (folder / "notes" / "a.txt").write_text("no clip here")
    return folder / "notes"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("no face", "no face found in any frame: give a clip that shows the speaker's face"),
        ("too short", "fewer than the 25 (1 s) a reference needs: give a longer clip"),
        ("no audio", "has no audio"),
        ("no videos", "is neither a video file nor a folder of videos"),
    ],
)
def test_a_bad_style_reference_is_one_line_and_leaves_nothing(
    kind: str,
    message: str,
    tiny_weights: WeightsLayout,
    clip_dir: Path,
    short_speech: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    voice = decode_audio_16k_mono(str(short_speech))
    reference = reference_clip(tmp_path, kind, voice)
    clip = write_clip(clip_dir / "style_main.mp4", Fraction(25), 25)
    out = tmp_path / "out" / "a.mp4"
    assert dub(tiny_weights, clip, short_speech, out, "--style-reference", str(reference)) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("musedub: error: style reference ") and message in lines[-1], err
    assert "Traceback" not in err
    assert not out.parent.exists() or not any(out.parent.iterdir())
