"""Decode speed and CPU cost of a 1080p H.264 film through FrameReader, on the CPU and with NVDEC
(issue 17: does GPU decode free the CPU cores the CPU stages need?).

    python bench/decode.py                                  # cpu, then cuda where a device opens
    python bench/decode.py --device cpu                     # the CPU line only
    python bench/decode.py --device cuda --json results.jsonl   # a GPU node: exits 1 when NVDEC does not open

The clip is the astronaut drifting on a 1920x1080 canvas (infra/sample_media.py), libx264 veryfast.
Each mode reads every frame as the stages do (RGB conversion included) with one reader, like a
segment. CPU seconds are the whole process's (time.process_time: FFmpeg's decode and swscale
threads are counted), so `cores busy` = CPU seconds / wall seconds is what a decode takes from
the stages beside it. The cuda mode then decodes the clip again beside a CPU reader and compares
every frame. `--json FILE` appends one JSON object per mode. Smooth synthetic content makes few
bits (the line shows Mbit/s): lower --crf for a bitrate nearer a film master's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.logging
import numpy as np

from musedub.infra.sample_media import write_clip
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.hw_decode import PLANAR_OF, Decoder, nvdec_unavailable, open_for_decode
from musedub.pipeline.media.probe import VideoInfo, probe_video

SIZE = (1920, 1080)
FPS = Fraction(25)
FACE_SCALE = 2.5  # the astronaut's face at ~230 px, a close-up in 1080p


def decode_all(info: VideoInfo, decoder: Decoder) -> dict[str, Any]:
    """Every frame through one reader: wall and process CPU seconds of the decode, and apart from
    them the reader's open (for cuda it creates the device context and the NVDEC decoder)."""
    start = time.perf_counter()
    with FrameReader(info, decoder=decoder) as reader:
        wall, cpu = time.perf_counter(), time.process_time()
        frames = sum(1 for _ in reader.frames(range(info.frame_count)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        hardware = reader.hardware
    opened = time.perf_counter() - start - wall  # construction and close
    return {
        "mode": decoder,
        "hardware": hardware,
        "frames": frames,
        "seconds": wall,
        "fps": frames / wall,
        "cpu_s_per_frame": cpu / frames,
        "cores_busy": cpu / wall,
        "open_close_s": opened,
    }


def compare_with_cpu(info: VideoInfo) -> dict[str, Any]:
    """Every cuda frame against the CPU reader's: how many are identical, the largest difference."""
    identical, worst = 0, 0
    with FrameReader(info) as cpu, FrameReader(info, decoder="cuda") as cuda:
        indices = range(info.frame_count)
        for a, b in zip(cpu.frames(indices), cuda.frames(indices), strict=True):
            same = np.array_equal(a, b)
            identical += same
            if not same:
                worst = max(worst, int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()))
    return {"identical_frames": identical, "max_abs_diff": worst}


def surface_format(uri: str) -> str:
    """The pixel format NVDEC hands over for the first frame (nv12 when it decoded; a planar
    format when FFmpeg fell back to software for this stream's profile)."""
    container, _ = open_for_decode(uri, "cuda")
    with container:
        return next(container.decode(video=0)).format.name


def describe(run: dict[str, Any]) -> str:
    line = (
        f"{run['mode']:4s}: {run['fps']:7.1f} frames/s, {1000 * run['cpu_s_per_frame']:6.2f} CPU ms/frame, "
        f"{run['cores_busy']:5.2f} cores busy, reader open + close {1000 * run['open_close_s']:.0f} ms"
    )
    if run["mode"] != "cuda":
        return line
    software = "" if run["surface"] in PLANAR_OF else " (FFmpeg decoded in software: NVDEC did not start)"
    equal = f"{run['identical_frames']}/{run['frames']} frames equal the CPU's"
    if run["identical_frames"] < run["frames"]:
        equal += f" (max abs diff {run['max_abs_diff']})"
    return f"{line}; surface {run['surface']}{software}; {equal}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--crf", type=int, default=18, help="x264 quality of the clip (lower: more bits)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", help="append one JSON object per mode to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    av.logging.set_level(av.logging.ERROR)  # FFmpeg's own reason when NVDEC fails (e.g. no libnvcuvid.so.1)
    header = {
        "bench": "decode",
        "kind": "decode",
        "cpus": os.cpu_count(),
        "pyav": av.__version__,
        "ffmpeg": av.ffmpeg_version_info,
    }

    def record(fields: dict[str, Any]) -> None:
        if args.json:
            with open(args.json, "a") as out:
                out.write(json.dumps({**header, **fields}) + "\n")

    with tempfile.TemporaryDirectory() as folder:
        frames = round(args.seconds * FPS)
        tick = time.perf_counter()
        clip = write_clip(Path(folder) / "film.mp4", FPS, frames, size=SIZE, scale=FACE_SCALE, crf=args.crf)
        info = probe_video(str(clip))
        mbits = clip.stat().st_size * 8 / 1e6 / args.seconds
        print(
            f"clip {info.width}x{info.height} {info.codec} {frames} frames at {FPS} fps, {mbits:.1f} Mbit/s "
            f"(written in {time.perf_counter() - tick:.1f} s); {os.cpu_count()} CPUs, PyAV {av.__version__}, "
            f"FFmpeg {av.ffmpeg_version_info}, load(1 min) {os.getloadavg()[0]:.2f}"
        )
        clip_fields = {"width": info.width, "height": info.height, "mbit_s": mbits}
        runs = [decode_all(info, "cpu")]
        if args.device != "cpu":
            cuda = decode_all(info, "cuda")
            if cuda["hardware"]:
                runs.append({**cuda, "surface": surface_format(str(clip)), **compare_with_cpu(info)})
        for run in runs:
            print(describe(run))
            record({**clip_fields, **run})
        if len(runs) == 1:
            reason = "--device cpu" if args.device == "cpu" else nvdec_unavailable() or "no hardware decoder for h264"
            print(f"cuda: no device (skipped: {reason})")
            if args.device == "cuda":
                record({**clip_fields, "mode": "cuda", "hardware": False, "error": reason})
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
