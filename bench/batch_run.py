"""The batch on the embedded local Ray cluster against the same jobs run in process.

    python bench/batch_run.py --jobs 3 --seconds 6 --segment-seconds 2 --num-cpus 2

Makes N 1080p jobs of the astronaut clip with dub audio, dubs them one after another with
`LocalRunner` (models loaded once, as a warm worker has them), then as one `BatchRunner` batch
on a fresh local cluster (cluster start timed apart). Prints videos/min of both, the Ray run's
overhead against the in-process one, busy frames/s per stage summed over workers (from the job
reports), who used the CPU in each run (`cpu_ledger.py`), and whether both runs made the same
bits. Tiny random weights unless `--weights`.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

from cpu_ledger import CpuLedger
from dub_path import FACE_SCALE, FPS, SIZE, long_speech

from musedub.infra.ray_cluster import connect
from musedub.infra.sample_media import write_clip
from musedub.models.weights.random import write_random_weights
from musedub.pipeline.dub.batch import BatchRunner, BatchSettings, JobState
from musedub.pipeline.dub.local_runner import LocalRunner
from musedub.pipeline.dub.manifest import JobSpec
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.outcome import JobOutcome

STAGES = ("probe", "TrackFaces", "Crop", "AudioPrompt", "Generate", "BlendEncode", "stitch+commit")


class Quiet:
    """Progress that counts instead of printing."""

    def __init__(self) -> None:
        self.segments = 0

    def planned(self, total_frames: int) -> None: ...

    def tracked(self, frames: int, total: int) -> None: ...

    def segment_done(self, state: JobState, frames: int) -> None:
        self.segments += 1

    def job_done(self, outcome: JobOutcome) -> None: ...


def stage_rates(reports: list[dict]) -> str:
    seconds: Counter[str] = Counter()
    for report in reports:
        seconds.update(report["seconds"])
    frames = sum(r["output_frames"] for r in reports)
    return "\n".join(f"  {name:14s} {frames / seconds[name]:8.1f} frames/s busy" for name in STAGES if seconds[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each job's video")
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local cluster")
    parser.add_argument("--cpu-threads", type=int, default=2, help="torch threads per worker (both runs)")
    parser.add_argument("--landmarks", default="dlib", choices=("dlib", "face-alignment"))
    parser.add_argument("--weights", type=Path, help="weights folder (default: tiny random ones)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.system()}, python {platform.python_version()}")
    options = DubOptions(landmarks=args.landmarks, segment_seconds=args.segment_seconds, cpu_threads=args.cpu_threads)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        weights = str(args.weights or write_random_weights(root / "weights", tiny=True, seed=0).root)
        frames = int(args.seconds * FPS)
        clip = write_clip(root / "clip.mp4", FPS, frames, size=SIZE, scale=FACE_SCALE, crf=18)
        audio = long_speech(root / "speech.wav", args.seconds)

        runner = LocalRunner(options, weights, "cpu")
        runner.setup()  # warm, as a worker is
        tick = time.perf_counter()
        with CpuLedger() as local_cpu:
            local = [runner.dub(str(clip), str(audio), str(root / f"local{i}.mp4")) for i in range(args.jobs)]
        local_seconds = time.perf_counter() - tick
        total = sum(r.output_frames for r in local)
        print(
            f"{args.jobs} jobs x {frames} frames 1080p, segments of {args.segment_seconds:g} s, {args.landmarks}, "
            f"{args.cpu_threads} torch threads"
        )
        print(
            f"in process:  {local_seconds:7.1f} s  {60 * args.jobs / local_seconds:6.2f} videos/min  "
            f"{total / local_seconds:6.2f} frames/s"
        )

        tick = time.perf_counter()
        resources = connect(num_cpus=args.num_cpus)
        start_seconds = time.perf_counter() - tick
        specs = [
            JobSpec(job_id=f"job{i}", video=str(clip), audio=str(audio), output=str(root / f"ray{i}.mp4"))
            for i in range(args.jobs)
        ]
        tick = time.perf_counter()
        settings = BatchSettings(weights=weights, options=options, device="cpu")
        with CpuLedger() as ray_cpu:
            outcomes = BatchRunner(settings, resources).run(specs, Quiet()).outcomes
        ray_seconds = time.perf_counter() - tick
        assert all(o.status == "done" for o in outcomes), [o.error for o in outcomes if o.error]
        print(
            f"ray batch:   {ray_seconds:7.1f} s  {60 * args.jobs / ray_seconds:6.2f} videos/min  "
            f"{total / ray_seconds:6.2f} frames/s  (+{start_seconds:.1f} s cluster start)"
        )
        print(f"ray overhead against in process: {100 * (ray_seconds / local_seconds - 1):+.1f}%")
        print(f"in process, {local_cpu.report()}")
        print(f"ray batch, {ray_cpu.report()}")
        for name, label in (
            ("local", "in process, per stage"),
            ("ray", "ray batch, per stage (busy time summed over workers)"),
        ):
            print(f"{label}:")
            print(
                stage_rates([json.loads((root / f"{name}{i}.mp4.report.json").read_text()) for i in range(args.jobs)])
            )
        same = all(
            (root / f"ray{i}.mp4").read_bytes() == (root / f"local{i}.mp4").read_bytes() for i in range(args.jobs)
        )
        print(f"outputs bit-identical to the in-process run: {same}")


if __name__ == "__main__":
    main()
