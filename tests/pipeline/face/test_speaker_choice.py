"""Who speaks, and which face each `--speaker` policy dubs: tracks built from a real face's
landmarks with mouths opened by real speech (the source's) or by another speech (a silent face
that moves its lips out of time)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from talking_faces import Face, Shot, write_dialogue

from musedub.infra.errors import InputError
from musedub.infra.sample_media import face_frame
from musedub.pipeline.audio.voicing import frame_energy, voiced_frames
from musedub.pipeline.face.choice import Why, choose, parse_speaker
from musedub.pipeline.face.job_tracks import Track, join_chunks
from musedub.pipeline.face.multi_track import SpanFaces
from musedub.pipeline.face.speaker import mouth_opening, speaking_frames, speaking_scores
from musedub.pipeline.face.track import FaceTracker
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono, decode_audio_span
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import probe_video

FPS = Fraction(25)
DATA = Path(__file__).resolve().parents[2] / "data"
N = 150  # 6 s


@pytest.fixture(scope="module")
def face_marks(dlib_detector) -> np.ndarray:
    """The astronaut's real landmarks (68, 2), mouth closed."""
    frame = face_frame(0.0)
    return dlib_detector.landmarks(frame, dlib_detector.detect(frame)[0])


def envelope(samples: np.ndarray) -> np.ndarray:
    level = frame_energy(samples, 16000, FPS, N)
    return np.clip((level - level.max() + 40) / 40, 0, 1)


def talking(marks: np.ndarray, drive: np.ndarray, scale: float, shift: float, seed: int) -> np.ndarray:
    """(N, 68, 2): the face scaled and moved, lower lip and jaw lowered by `drive` (0..1), 0.4 px jitter."""
    out = np.repeat(((marks - marks.mean(0)) * scale + shift)[None], len(drive), axis=0)
    lower = [5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67]
    out[:, lower, 1] += drive[:, None] * 12 * scale
    return (out + np.random.default_rng(seed).normal(0, 0.4, out.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def scene(face_marks: np.ndarray, speech: np.ndarray) -> dict:
    heard, other = speech[: N * 640].copy(), speech[N * 640 : 2 * N * 640]
    heard[110 * 640 :] = 0  # nobody speaks in the last 1.6 s
    level = frame_energy(heard, 16000, FPS, N)
    speaker = Track(1, 0, 0, talking(face_marks, envelope(heard), 0.8, 150, 1))  # small, left
    silent = Track(2, 0, 0, talking(face_marks, envelope(other), 1.4, 450, 2))  # large, right
    return {"tracks": [speaker, silent], "level": level, "voiced": voiced_frames(level)}


def pick(scene: dict, speaker: str, level: bool = True):
    shot = np.zeros(N, np.int32)
    lv, vo = (scene["level"], scene["voiced"]) if level else (None, None)
    return choose(scene["tracks"], shot, lv, vo, speaker, FPS, (640, 360), 0.5, "clip.mp4")


def test_the_face_in_time_with_the_audio_scores_high_and_the_other_low(scene: dict) -> None:
    speaker, silent = scene["tracks"]
    args = (0, scene["level"], scene["voiced"], FPS)
    own = speaking_scores(mouth_opening(speaker.landmarks), *args)
    other = speaking_scores(mouth_opening(silent.landmarks), *args)
    voiced_windows = own != 0
    assert voiced_windows.mean() > 0.7
    assert np.median(own[voiced_windows]) > 0.8
    assert np.median(other[voiced_windows]) < 0.4
    still = speaking_scores(np.full(N, 0.05), *args)
    assert np.all(still == 0)  # a mouth that does not move never speaks


def test_auto_dubs_the_speaker_though_the_silent_face_is_larger(scene: dict) -> None:
    choice = pick(scene, "auto")
    speaking = choice.primary[choice.primary > 0]
    assert len(speaking) > 0.6 * N and np.all(speaking == 1)
    assert set(np.unique(choice.why)) <= {Why.SPEAKS, Why.NOBODY}
    assert np.all(pick(scene, "largest").primary == 2)


def test_no_flicker_every_choice_lasts_the_minimum_span(scene: dict) -> None:
    primary = pick(scene, "auto").primary
    change = np.flatnonzero(np.diff(primary)) + 1
    lengths = np.diff(np.concatenate([[0], change, [N]]))
    assert np.all(lengths[1:-1] >= round(0.5 * 25))


def test_a_point_and_a_track_id_choose_what_they_say(scene: dict) -> None:
    assert np.all(pick(scene, "0.2,0.4").primary == 1)  # the face at x=150 of 640
    assert np.all(pick(scene, "0.9,0.5").primary == 2)
    assert np.all(pick(scene, "track:2").primary == 2)
    with pytest.raises(InputError, match=r"--speaker track:7: video clip.mp4 has tracks 1..2"):
        pick(scene, "track:7")


def test_without_source_audio_auto_dubs_the_largest_and_says_why(scene: dict) -> None:
    choice = pick(scene, "auto", level=False)
    assert np.all(choice.primary == 2) and np.all(choice.why == Why.NO_SOURCE_AUDIO)


def test_where_nobody_speaks_a_voiced_dub_takes_the_nearest_speaker_and_a_resting_dub_none(scene: dict) -> None:
    choice = pick(scene, "auto")
    quiet = np.flatnonzero(choice.primary == 0)
    assert len(quiet)
    track, why = choice.decide(quiet, np.zeros(len(quiet), bool))
    assert np.all(track == 1) and np.all(why == Why.SPOKE_NEAR)
    track, why = choice.decide(quiet, np.ones(len(quiet), bool))
    assert np.all(track == 0) and np.all(why == Why.NOBODY)


@pytest.mark.parametrize(
    "text, message",
    [("mouth", "is not a policy"), ("1.5,0.2", "within 0..1"), ("track:x", "is not a policy"), ("0.2", "not a policy")],
)
def test_bad_speaker_values_name_the_value_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_speaker(text)


def _chunk(frames: int, boxes: list[tuple[int, float] | None], cut_at: int | None = None) -> SpanFaces:
    """Chunk faces from (first frame seen, x) per track: a square 60 px face there to the end."""
    marks = np.full((len(boxes), frames, 68, 2), np.nan, np.float32)
    square = np.stack(np.meshgrid(np.linspace(0, 60, 17), np.linspace(0, 60, 4)), -1).reshape(-1, 2)[:68]
    for k, (first, x) in enumerate(boxes):
        marks[k, first:] = square + [x, 100]
    cuts = np.zeros(frames, bool)
    if cut_at is not None:
        cuts[cut_at] = True
    return SpanFaces(marks, cuts)


def test_chunks_join_into_tracks_across_their_edge_but_never_across_a_cut() -> None:
    first = _chunk(10, [(0, 100), (0, 400)])
    tracks, shot = join_chunks([(0, first), (10, _chunk(10, [(0, 402), (3, 101)]))], gap=12)
    assert [(t.id, t.start, t.stop) for t in tracks] == [(1, 0, 20), (2, 0, 20)]  # gap of 3 frames bridged
    assert np.all(shot == 0) and not tracks[0].seen[10:13].any()
    tracks, shot = join_chunks([(0, first), (10, _chunk(10, [(0, 100)], cut_at=0))], gap=12)
    assert [(t.id, t.shot, t.start) for t in tracks] == [(1, 0, 0), (2, 0, 0), (3, 1, 10)]
    assert shot[9] == 0 and shot[10] == 1


def test_speaking_frames_keeps_the_face_that_speaks_and_drops_it_under_a_voice_over(
    dlib_detector, tmp_path: Path
) -> None:
    """What `preprocess --speaking-only` keeps: one real face, tracked by dlib, speaking in sync in
    its first shot and silent under the same voice (a voice-over) in the second."""
    speech_a = decode_audio_16k_mono(str(DATA / "speech_16k.wav"))
    shots = [
        Shot(50, (Face("astronaut", (0.5, 0.5), 110, "a"),), "a", (40, 60, 90)),
        Shot(50, (Face("astronaut", (0.4, 0.5), 110, None),), "a", (130, 95, 50)),
    ]
    clip = write_dialogue(tmp_path / "voice_over.mp4", shots, speech_a, speech_a, size=(320, 240))
    info = probe_video(str(clip))
    with FrameReader(info) as reader:
        track = FaceTracker(dlib_detector).track(reader.frames(range(info.frame_count)))
    samples, rate = decode_audio_span(str(clip), 0.0, 4.0)
    level = frame_energy(samples, rate, FPS, 100)
    speaks = speaking_frames(track.landmarks, track.shot, level, FPS, voiced_frames(level), 12)
    assert speaks[:50].mean() > 0.8 and not speaks[50:].any()


def test_a_span_of_unreadable_source_audio_only_blinds_that_span(scene: dict) -> None:
    level = scene["level"].copy()
    level[:40] = np.nan  # a chunk whose audio track could not be read
    shot = np.zeros(N, np.int32)
    choice = choose(scene["tracks"], shot, level, voiced_frames(level), "auto", FPS, (640, 360), 0.5, "clip.mp4")
    assert np.all(choice.primary[60:100] == 1)  # the speaker, where the audio is known


def test_when_no_face_is_seen_speaking_anywhere_auto_dubs_the_largest_and_says_why(scene: dict) -> None:
    """A presenter whose mouth the detector cannot read must not come out undubbed."""
    still = [Track(t.id, t.shot, t.start, np.repeat(t.landmarks[:1], N, axis=0)) for t in scene["tracks"]]
    choice = choose(still, np.zeros(N, np.int32), scene["level"], scene["voiced"], "auto", FPS, (640, 360), 0.5, "v")
    assert np.all(choice.primary == 2) and np.all(choice.why == Why.NO_SPEAKER_SEEN)
