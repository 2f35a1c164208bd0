"""Frames/s of each CPU stage of the single-video path on a generated 1080p clip, and the whole
`dub` path with the given weights (tiny random by default), with its peak RSS.

    python bench/dub_path.py --seconds 20 --whole 20,120 --landmarks dlib

Stage figures run on `--stage-frames` frames held in memory, so each excludes the others; the
whole path runs `LocalRunner.dub` in a fresh process per clip length and reads that process's
peak RSS. Prints one line per figure; they go to docs/PERFORMANCE.md with the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from musedub.infra.sample_media import write_audio, write_clip
from musedub.models.face_parsing import BiSeNet, FaceParser
from musedub.models.landmarks import load_landmark_detector
from musedub.models.weights.layout import WeightsLayout
from musedub.models.weights.random import write_random_weights
from musedub.pipeline.face.blend import blend_face, lower_face_mask
from musedub.pipeline.face.crop_geometry import crop_box, crop_face, paste_square
from musedub.pipeline.face.parsing_mask import jaw_region, parser_input
from musedub.pipeline.face.track import FaceTracker
from musedub.pipeline.media.encode import SegmentEncoder
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.probe import probe_video

SIZE = (1920, 1080)
FPS = Fraction(25)
FACE_SCALE = 2.5  # the astronaut's face at ~230 px, a close-up in 1080p


def rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:8.1f} frames/s ({1000 * seconds / frames:7.1f} ms/frame)"


def long_speech(path: Path, seconds: float) -> Path:
    """The committed speech sample repeated to `seconds`, as 16 kHz wav."""
    from musedub.pipeline.media.audio_decode import decode_audio_16k_mono

    speech = decode_audio_16k_mono(str(Path(__file__).parents[1] / "tests" / "data" / "speech_16k.wav"))
    samples = np.resize(speech, int(seconds * 16000))
    return write_audio(path, samples, 16000)


def stage_figures(clip: Path, frames: int, landmarks: str, weights: Path) -> None:
    info = probe_video(str(clip))
    tick = time.perf_counter()
    with FrameReader(info) as reader:
        held = list(reader.frames(range(frames)))
    print(f"decode 1080p h264:        {rate(frames, time.perf_counter() - tick)}")
    detector = load_landmark_detector(landmarks, WeightsLayout(weights).face_alignment)
    tick = time.perf_counter()
    track = FaceTracker(detector).track(held)
    print(f"landmarks ({landmarks}, track): {rate(frames, time.perf_counter() - tick)}")
    boxes = [crop_box(m, info.height) for m in track.landmarks]
    tick = time.perf_counter()
    crops = [crop_face(f, b) for f, b in zip(held, boxes, strict=True)]
    print(f"crop to 256 (Lanczos):    {rate(frames, time.perf_counter() - tick)}")
    tick = time.perf_counter()
    blended = [
        blend_face(f, c, b, lower_face_mask(m, b))
        for f, c, b, m in zip(held, crops, boxes, track.landmarks, strict=True)
    ]
    print(f"blend (mask + paste):     {rate(frames, time.perf_counter() - tick)}")
    parser = FaceParser(BiSeNet(), torch.device("cpu"))  # random: the timing is the same as the real file's
    tick = time.perf_counter()
    for f, b in zip(held, boxes, strict=True):
        square = paste_square(b)
        jaw_region(parser.parse(parser_input(f, square)[None])[0])
    print(f"face parsing (BiSeNet 512, cpu): {rate(frames, time.perf_counter() - tick)}")
    with tempfile.TemporaryDirectory() as work:
        tick = time.perf_counter()
        with SegmentEncoder(Path(work) / "s.mp4", info.width, info.height, info.fps) as encoder:
            for frame in blended:
                encoder.write(frame)
        print(f"encode x264 (defaults):   {rate(frames, time.perf_counter() - tick)}")


def whole_path(clip: Path, audio: Path, weights: Path, landmarks: str, out: Path) -> None:
    """`LocalRunner.dub` in a child process; prints its frames/s and peak RSS.

    The peak is the child's VmHWM: ru_maxrss would carry over the parent's peak across exec.
    """
    code = (
        "import json;"
        "from musedub.pipeline.dub.options import DubOptions;"
        "from musedub.pipeline.dub.local_runner import LocalRunner;"
        f"r = LocalRunner(DubOptions(landmarks={landmarks!r}), {str(weights)!r}, 'cpu')"
        f".dub({str(clip)!r}, {str(audio)!r}, {str(out)!r});"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1];"
        "print(json.dumps({'frames': r.output_frames, 'seconds': r.seconds, 'rss': int(hwm)}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    seconds = figures["seconds"]
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items() if k != "total")
    print(
        f"whole path {figures['frames']} frames: {rate(figures['frames'], seconds['total'])}; "
        f"peak RSS {figures['rss'] / 1024:.0f} MiB; {stages}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage-frames", type=int, default=50)
    parser.add_argument("--whole", default="20,120", help="clip lengths in seconds for the whole-path runs")
    parser.add_argument("--landmarks", default="dlib", choices=("dlib", "face-alignment"))
    parser.add_argument("--weights", type=Path, help="weights folder (default: tiny random ones)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.system()}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        weights = args.weights or write_random_weights(root / "weights", tiny=True, seed=0).root
        if args.stage_frames:
            clip = write_clip(root / "stage.mp4", FPS, args.stage_frames, size=SIZE, scale=FACE_SCALE, crf=18)
            stage_figures(clip, args.stage_frames, args.landmarks, weights)
        for seconds in (float(s) for s in args.whole.split(",") if s):
            frames = int(seconds * FPS)
            clip = write_clip(root / f"clip{seconds:g}.mp4", FPS, frames, size=SIZE, scale=FACE_SCALE, crf=18)
            audio = long_speech(root / f"speech{seconds:g}.wav", seconds)
            whole_path(clip, audio, weights, args.landmarks, root / f"out{seconds:g}.mp4")
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
