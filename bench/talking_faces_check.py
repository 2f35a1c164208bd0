"""Checks that the dialogue clips of tests/talking_faces.py hold faces that a landmark detector sees
talking: renders a 6 s two-person clip, decodes it back and, per face, prints how often dlib finds
it and how its measured inner-lip gap follows the speech that drives it (and the other speech).

    python bench/talking_faces_check.py              # astronaut 110 px + portrait 150 px, then 80 and 200 px
    python bench/talking_faces_check.py --heights 110,150

Exits 1 when a face is found in under 95% of frames, correlates under 0.8 with its own speech, or
correlates with the other speech within 0.2 of its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from talking_faces import Face, Shot, speech_envelope, write_dialogue  # noqa: E402

from musedub.models.landmarks import DlibLandmarks, dlib_predictor_path
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FPS, SIZE, FRAMES = 25, (640, 360), 150
MIN_FOUND, MIN_OWN, MIN_MARGIN = 0.95, 0.8, 0.2


def inner_lip_gaps(path: Path, faces: tuple[Face, ...]) -> np.ndarray:
    """(frames, faces) inner-lip gap over face box height per decoded frame; NaN where the face is missed."""
    detector = DlibLandmarks(dlib_predictor_path())
    expected = np.array([(f.centre[0] * SIZE[0], f.centre[1] * SIZE[1]) for f in faces])  # (faces, 2)
    rows = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            boxes = detector.detect(rgb)
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (n, 2)
            row = np.full(len(faces), np.nan)
            for k, face in enumerate(faces):
                if not len(boxes):
                    continue
                distance = np.linalg.norm(centres - expected[k], axis=1)
                j = int(np.argmin(distance))
                if distance[j] > face.height / 2:
                    continue
                marks = detector.landmarks(rgb, boxes[j])
                gap = np.linalg.norm(marks[[61, 62, 63]] - marks[[67, 66, 65]], axis=1).mean()
                row[k] = gap / (boxes[j, 3] - boxes[j, 1])
            rows.append(row)
    return np.array(rows)


def check(heights: tuple[int, int], speech_a: np.ndarray, speech_b: np.ndarray, folder: Path) -> bool:
    """Render one clip with the astronaut (speech a, left) and the portrait (speech b, right); True when it passes."""
    faces = (
        Face("astronaut", (0.27, 0.5), heights[0], "a"),
        Face("portrait", (0.72, 0.5), heights[1], "b"),
    )
    shots = [Shot(FRAMES // 2, faces, "a", (40, 90, 160)), Shot(FRAMES - FRAMES // 2, faces, "a", (200, 170, 60))]
    path = folder / f"dialogue_{heights[0]}_{heights[1]}.mp4"
    start = time.perf_counter()
    write_dialogue(path, shots, speech_a, speech_b, FPS, SIZE)
    seconds = time.perf_counter() - start
    gaps = inner_lip_gaps(path, faces)
    envelopes = {k: speech_envelope(s, FPS, len(gaps)) for k, s in (("a", speech_a), ("b", speech_b))}
    print(f"{len(gaps)} frames {SIZE[0]}x{SIZE[1]}, rendered in {seconds:.2f} s")
    passed = True
    for k, face in enumerate(faces):
        found = ~np.isnan(gaps[:, k])
        other = "b" if face.speech == "a" else "a"
        own_r = np.corrcoef(gaps[found, k], envelopes[face.speech][found])[0, 1] if found.sum() > 2 else np.nan
        other_r = np.corrcoef(gaps[found, k], envelopes[other][found])[0, 1] if found.sum() > 2 else np.nan
        ok = found.mean() >= MIN_FOUND and own_r >= MIN_OWN and own_r - other_r >= MIN_MARGIN
        passed &= bool(ok)
        print(
            f"  {face.who:9} {face.height:3d} px: found {found.mean():6.1%},"
            f" gap vs speech {face.speech} r={own_r:+.3f}, vs speech {other} r={other_r:+.3f}  {'ok' if ok else 'FAIL'}"
        )
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", action="append", help="astronaut,portrait face heights in px (repeatable)")
    args = parser.parse_args()
    configs = [tuple(int(v) for v in h.split(",")) for h in args.heights or ["110,150", "80,80", "200,200"]]
    speech_a = decode_audio_16k_mono(str(DATA / "speech_16k.wav"))
    speech_b = decode_audio_16k_mono(str(DATA / "speech_b_16k.wav"))
    envelopes = [speech_envelope(s, FPS, FRAMES) for s in (speech_a, speech_b)]
    print(f"envelopes a vs b over the clip: r={np.corrcoef(*envelopes)[0, 1]:+.3f}")
    with tempfile.TemporaryDirectory() as folder:
        results = [check(heights, speech_a, speech_b, Path(folder)) for heights in configs]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
