"""Planning at catalogue scale: a feature-length film, and a large manifest.

    python bench/plan_scale.py --hours 2 --jobs 10000

Film: a 1080p25 H.264 file of `--hours` made cheaply (one 10 s GOP of a still face encoded once,
its packets written again with shifted timestamps: a real, decodable long-GOP file at a very low
bitrate), then `plan_job` on it as `dub` and the batch's plan task run it: probe (every packet
demuxed), keyframe index, dub audio decode, rests. Manifest: `--jobs` rows written as JSON Lines
and read back by the batch's reader. Each part runs in a fresh process; prints wall time and
that process's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 25
GOP = 250


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_film(path: Path, seconds: int) -> Path:
    """1080p25 H.264 of `seconds`: one GOP encoded, its packets repeated with shifted timestamps."""
    from musedub.infra.sample_media import face_frame

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"crf": "40", "preset": "ultrafast", "x264-params": f"keyint={GOP}:min-keyint={GOP}:bframes=0"}
        frame = av.VideoFrame.from_ndarray(face_frame(0.0, (1920, 1080)), format="rgb24")
        packets = []
        for i in range(GOP):
            frame.pts = i
            packets.extend(stream.encode(frame))
        packets.extend(stream.encode(None))
        gop = [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in packets]
        time_base = packets[0].time_base
        step = int(Fraction(GOP, FPS) / time_base)  # one GOP in the packets' time base
        for repeat in range(seconds * FPS // GOP):
            for data, pts, dts, key in gop:
                packet = av.Packet(data)
                packet.stream = stream
                packet.pts, packet.dts = pts + repeat * step, dts + repeat * step
                packet.time_base = time_base
                packet.is_keyframe = key
                out.mux(packet)
    return path


def plan_film(queue: multiprocessing.Queue, film: str, audio: str) -> None:
    from musedub.pipeline.dub.options import DubOptions
    from musedub.pipeline.dub.plan import plan_job
    from musedub.pipeline.media.index import index_bytes, video_info

    tick = time.perf_counter()
    plan = plan_job(None, film, audio, film + ".out.mp4", DubOptions(length_policy="trim-audio"), "weights")
    seconds = time.perf_counter() - tick
    info = video_info(plan.base_row())
    index = len(index_bytes(info))
    queue.put((seconds, peak_rss_mib(), plan.video_frames, len(plan.segments()), len(info.keyframes), index))


def read_jobs(queue: multiprocessing.Queue, manifest: str) -> None:
    from musedub.pipeline.dub.manifest import read_manifest

    tick = time.perf_counter()
    jobs = read_manifest(manifest)
    queue.put((time.perf_counter() - tick, peak_rss_mib(), len(jobs.jobs)))


def in_process(target, *args):  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: its peak RSS is the part's own
    queue = context.Queue()
    proc = context.Process(target=target, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    from musedub.infra.sample_media import write_audio

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        seconds = int(args.hours * 3600)
        tick = time.perf_counter()
        film = write_film(root / "film.mp4", seconds)
        made = time.perf_counter() - tick
        print(f"film: {seconds} s 1080p25, {film.stat().st_size / 2**20:.1f} MiB, made in {made:.0f} s")
        noise = np.random.default_rng(0).normal(0, 0.1, seconds * 16000).astype(np.float32)
        audio = write_audio(root / "dub.wav", noise, 16000)
        took, rss, frames, segments, keyframes, index = in_process(plan_film, str(film), str(audio))
        print(
            f"plan the film: {took:.1f} s, peak RSS {rss:.0f} MiB; {frames} frames, {segments} segments, "
            f"{keyframes} keyframes, media index {index / 2**20:.1f} MiB"
        )
        manifest = root / "jobs.jsonl"
        with manifest.open("w") as handle:
            for i in range(args.jobs):
                row = {"job_id": f"title-{i:05d}-es", "video": f"s3://catalogue/titles/{i:05d}/master.mp4"}
                row |= {"audio": f"s3://catalogue/titles/{i:05d}/es.wav", "output": f"s3://dubs/es/{i:05d}.mp4"}
                handle.write(json.dumps(row) + "\n")
        took, rss, count = in_process(read_jobs, str(manifest))
        print(f"read a {count}-job manifest: {took:.1f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
