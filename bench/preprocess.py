"""Preprocessing throughput: source-hours per CPU-hour, one source as one row and cut into spans,
with dlib and with face-alignment landmarks.

    python bench/preprocess.py --cpus 2 --minutes 4 --shard-seconds 120 --fa-seconds 8 --fa-shard-seconds 4

Each backend gets one talking-head source made by `infra.sample_media.write_clip` (the astronaut
photo drifting, zooming and turning, the committed speech looped under it as AAC): dlib a
`--minutes` 512x384 source at the default preprocess settings (faces ~200 px); face-alignment a
`--fa-seconds` 320x240 one (`--min-face 64`), far shorter because random face-alignment weights
run at about 2 s a frame on one core (below). Each source is preprocessed twice on a fresh local
Ray cluster of `--cpus` CPUs by `plan_preprocess` + `run_preprocess`, what `musedub preprocess`
runs: once as one row (shard length above the source's), once cut into spans; the clocks include
planning (the driver's probe and media index of a sharded source) and Ray Data's start-up.

Weights are random, written here: tiny test-sized models, but whisper at whisper-tiny's real size
(its encoder cost is what a real run pays), and for face-alignment the real S3FD and 2DFAN4
architectures (`face_alignment`'s own modules, random weights, as tests/models/test_landmarks.py
makes them): their compute per call is a real run's, but a random S3FD fires on hundreds of boxes
in every frame, so its face-alignment figures are an upper bound on the per-frame cost and the
point of them is the speed-up from spans, not the absolute rate.

Prints per run: wall s, busy CPU-s (the stage's own time summed over rows), source-hours per
CPU-hour = source seconds / (wall s x CPUs of the cluster), and the speed-up of spans over one row.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def write_weights(root: Path) -> Path:
    """Tiny random weights, whisper replaced by a random whisper-tiny, plus random S3FD and 2DFAN4."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from musedub.models.audio_encoder import WHISPER_TINY_CONFIG
    from musedub.models.landmarks import FAN_FILE, S3FD_FILE
    from musedub.models.weights.random import write_random_weights

    layout = write_random_weights(root, tiny=True)
    torch.manual_seed(0)
    config = WhisperConfig(**WHISPER_TINY_CONFIG)
    config.save_pretrained(layout.whisper)
    whisper = WhisperForConditionalGeneration(config)
    torch.save({k: v.contiguous() for k, v in whisper.state_dict().items()}, layout.whisper / "pytorch_model.bin")
    layout.face_alignment.mkdir(parents=True, exist_ok=True)
    torch.save(s3fd().state_dict(), layout.face_alignment / S3FD_FILE)
    torch.save(FAN(4).state_dict(), layout.face_alignment / FAN_FILE)
    return root


def write_source(folder: Path, seconds: float, size: tuple[int, int], scale: float) -> Path:
    from musedub.infra.sample_media import write_clip
    from musedub.pipeline.media.audio_decode import decode_audio_16k_mono

    speech = decode_audio_16k_mono(str(Path(__file__).parents[1] / "tests" / "data" / "speech_16k.wav"))
    folder.mkdir(parents=True)
    frames = int(seconds * 25)
    write_clip(folder / "talk.mp4", Fraction(25), frames, size, scale=scale, audio=np.resize(speech, frames * 640))
    return folder


def preprocess(src: Path, out: Path, cpus: int, seconds: float, **settings: object) -> dict[str, float]:
    """One `musedub preprocess` run, timed from planning to the last marker."""
    from musedub.pipeline.core.run import Run
    from musedub.pipeline.dataset.preprocess import plan_preprocess, run_preprocess, runs_root
    from musedub.pipeline.dataset.settings import PreprocessSettings

    values = PreprocessSettings(**settings)
    run = Run(runs_root(str(out)))
    tick = time.perf_counter()
    plan = plan_preprocess(str(src), str(out), values, work=run.uri)
    planned = time.perf_counter() - tick
    results = run_preprocess(plan, values, run, lambda summary: None)
    wall = time.perf_counter() - tick
    assert [r["status"] for r in results] == ["ok"], results
    return {
        "rows": len(plan.todo),
        "plan": planned,
        "wall": wall,
        "busy": sum(r["elapsed"] for r in results),
        "clips": results[0]["clips"],
        "rate": seconds / (wall * cpus),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=4.0, help="the dlib source")
    parser.add_argument("--shard-seconds", type=float, default=120.0, help="spans of the dlib source")
    parser.add_argument("--fa-seconds", type=float, default=8.0, help="the face-alignment source (0: none)")
    parser.add_argument("--fa-shard-seconds", type=float, default=4.0, help="spans of the face-alignment source")
    args = parser.parse_args()

    from musedub.infra.ray_cluster import connect

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    print(f"local Ray cluster of {args.cpus} CPUs, torch {torch.__version__}")
    connect(num_cpus=args.cpus)
    root = Path(tempfile.mkdtemp(prefix="musedub-bench-preprocess-"))
    try:
        weights = str(write_weights(root / "weights"))
        cases = [
            ("dlib", args.minutes * 60, (512, 384), 2.2, {}, args.shard_seconds),
            ("face-alignment", args.fa_seconds, (320, 240), 1.0, {"min_face": 64}, args.fa_shard_seconds),
        ]
        for backend, seconds, size, scale, extra, shard in (c for c in cases if c[1] > 0):
            src = write_source(root / backend / "src", seconds, size, scale)
            figures = {}
            for name, length in (("one row", seconds + 1), ("spans", shard)):
                out = root / backend / name.replace(" ", "-")
                settings = {"weights": weights, "landmarks": backend, "shard_seconds": length, **extra}
                figures[name] = f = preprocess(src, out, args.cpus, seconds, **settings)
                print(
                    f"{backend:>14} {seconds:6.0f} s {size[0]}x{size[1]} {name:>7}: {f['rows']} row(s), "
                    f"{f['clips']} clips, plan {f['plan']:.1f} s, wall {f['wall']:.1f} s, busy {f['busy']:.1f} CPU-s, "
                    f"{f['rate']:.3f} source-h per CPU-h"
                )
            speedup = figures["one row"]["wall"] / figures["spans"]["wall"]
            print(f"{backend:>14} speed-up from spans on {args.cpus} CPUs: {speedup:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
