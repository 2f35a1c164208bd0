"""Several real faces on screen: `musedub faces` lists them, and `dub --speaker auto` dubs the one
who speaks in the source, not the larger silent one, on either side of the frame and across a
hard cut between two speakers; a shot where nobody speaks comes out untouched.

The clip (tests/talking_faces.py): two real people, each mouth opened by a speech's loudness;
the audio heard is one of the two speeches per shot.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from media_checks import decoded
from talking_faces import Face, Shot, write_dialogue

from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.dub.face_stages import TrackFacesStage
from musedub.pipeline.dub.job_faces import choose_in_video
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.index import remember
from musedub.pipeline.media.probe import probe_video

DATA = Path(__file__).resolve().parent.parent / "data"
SIZE = (640, 360)
SHOT = 60  # frames, 2.4 s at 25 fps
GREEN = (60, 110, 60)
SHOTS = (
    # astronaut speaks (heard: speech a) on the left; the portrait, larger, moves its lips to speech b
    Shot(SHOT, (Face("astronaut", (0.25, 0.5), 90, "a"), Face("portrait", (0.72, 0.5), 130, "b")), "a", (40, 60, 90)),
    # after a hard cut the portrait speaks (heard: speech b) on the right; the astronaut is larger
    Shot(SHOT, (Face("astronaut", (0.28, 0.5), 130, "a"), Face("portrait", (0.74, 0.5), 90, "b")), "b", (130, 95, 50)),
    # nobody speaks, nothing is heard
    Shot(SHOT, (Face("astronaut", (0.25, 0.5), 90, None), Face("portrait", (0.72, 0.5), 130, None)), None, GREEN),
)


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    speech_a = decode_audio_16k_mono(str(DATA / "speech_16k.wav"))
    speech_b = decode_audio_16k_mono(str(DATA / "speech_b_16k.wav"))
    return write_dialogue(tmp_path_factory.mktemp("dialogue") / "dialogue.mp4", SHOTS, speech_a, speech_b, size=SIZE)


def dub(video: Path, weights: WeightsLayout, out: Path, *flags: str) -> int:
    """`musedub dub` of `video` with speech B as the dub audio, dlib landmarks."""
    args = ["--video", str(video), "--audio", str(DATA / "speech_b_16k.wav"), "--output", str(out)]
    return main(["dub", *args, "--weights", str(weights.root), "--landmarks", "dlib", *flags])


def lower_face(face: Face) -> tuple[slice, slice]:
    """Rows and columns of the lower half of a face's box on the canvas."""
    cx, cy = face.centre[0] * SIZE[0], face.centre[1] * SIZE[1]
    half = face.height / 2
    return slice(int(cy), int(cy + half)), slice(int(cx - half), int(cx + half))


@pytest.mark.slow
def test_faces_lists_every_track_with_who_speaks_and_a_contact_sheet(
    dialogue: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "sheet.png"
    # tracked in 17 chunks of 11 frames, as 17 workers would, and joined at their edges
    args = ["faces", str(dialogue), "--landmarks", "dlib", "--json", "--sheet", str(sheet), "--segment-seconds", "0.44"]
    assert main(args) == 0
    listing = json.loads(capsys.readouterr().out)
    tracks = {t["track"]: t for t in listing["tracks"]}
    assert [(t["track"], t["shot"], t["frames"]) for t in listing["tracks"]] == [
        (1, 0, [0, 60]),  # astronaut, left
        (2, 0, [0, 60]),  # portrait, right
        (3, 1, [60, 120]),
        (4, 1, [60, 120]),
        (5, 2, [120, 180]),
        (6, 2, [120, 180]),
    ]
    speaking_seconds = {i: sum(b - a for a, b, _ in t["speaking"]) for i, t in tracks.items()}
    assert speaking_seconds[1] > 1.5 and speaking_seconds[4] > 1.5  # the faces in time with what is heard
    assert max(speaking_seconds[2], speaking_seconds[3]) < 0.2  # lips moving, but not to what is heard
    assert speaking_seconds[5] == speaking_seconds[6] == 0  # nothing is heard
    assert tracks[2]["mean_height_px"] > tracks[1]["mean_height_px"]  # the silent face is the larger
    assert cv2.imread(str(sheet)).shape == (160, 6 * 160, 3)


@pytest.mark.slow
def test_auto_dubs_the_speaker_not_the_larger_face_and_leaves_a_silent_shot_untouched(
    dialogue: Path, tiny_weights: WeightsLayout, tmp_path: Path
) -> None:
    out = tmp_path / "dubbed.mp4"
    assert dub(dialogue, tiny_weights, out, "--length-policy", "trim-audio") == 0
    source, dubbed = decoded(dialogue), decoded(out)
    assert len(dubbed) == len(source) == 3 * SHOT

    def changed(shot: int, face: int) -> np.ndarray:
        rows, cols = lower_face(SHOTS[shot].faces[face])
        frames = range(shot * SHOT, (shot + 1) * SHOT)
        return np.array([np.abs(dubbed[i][rows, cols].astype(int) - source[i][rows, cols]).mean() > 6 for i in frames])

    assert changed(0, 0).mean() > 0.7 and not changed(0, 1).any()  # shot 1: the astronaut, on the left
    assert changed(1, 1).mean() > 0.7 and not changed(1, 0).any()  # shot 2: the portrait, on the right
    assert not changed(2, 0).any() and not changed(2, 1).any()  # nobody speaks: untouched
    for i in range(2 * SHOT, 3 * SHOT):  # the whole frame, up to the H.264 encode
        assert np.abs(dubbed[i].astype(int) - source[i]).mean() < 2.0

    report = json.loads(Path(str(out) + ".report.json").read_text())
    spans = report["speakers"]["spans"]
    dubbed_tracks = {s["track"] for s in spans if s["track"]}
    assert dubbed_tracks == {1, 4}
    assert all(s["track"] is None for s in spans if s["frames"][0] >= 2 * SHOT)
    assert any(s["why"] == "speaks in the source" and s["speaking_score"] > 0.5 for s in spans)
    assert report["faces"]["not_chosen"] > 0


@pytest.mark.slow
def test_an_unknown_track_id_fails_the_job_naming_the_ids_there_are(
    dialogue: Path, tiny_weights: WeightsLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never.mp4"
    assert dub(dialogue, tiny_weights, out, "--speaker", "track:9") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("musedub: error: --speaker track:9: video") and "has tracks 1..6" in err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_with_syncnet_weights_syncnet_scores_who_speaks(dialogue: Path, training_weights: WeightsLayout) -> None:
    """The random SyncNet says nothing true; this shows that it, not the mouth-loudness rule, ran:
    its probabilities cover the frames of 16-frame windows where each face is seen."""
    options = DubOptions(landmarks="dlib")
    stage = TrackFacesStage(str(training_weights.root), options)
    stage.setup()
    info = probe_video(str(dialogue))
    remember("syncnet-test", info)
    row = {"job_key": "syncnet-test", "video": str(dialogue), "fps": "25", "still_fps": "25", "frame_count": 180}
    out = stage({**row, "options": options.model_dump_json(), "chunk_start": 0, "chunk_stop": 60})
    sync, seen = out["sync"], ~np.isnan(out["faces"][:, :, 0, 0])
    assert sync.shape == (2, 60) and np.all(np.isfinite(sync) <= seen) and np.isfinite(sync[:, :56]).all()
    assert np.all(sync[np.isfinite(sync)] <= 1.0)
    choice = choose_in_video([out], options, info)
    assert choice.detector == "syncnet" and set(choice.scores) == {1, 2}
