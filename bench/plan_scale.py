"""Planning at catalogue scale: a feature-length film, a large manifest, and planning a large batch.

    python bench/plan_scale.py --hours 2 --jobs 10000 --plan-jobs 10000

Film: a 1080p25 H.264 file of `--hours` made cheaply (one 10 s GOP of a still face encoded once,
its packets written again with shifted timestamps: a real, decodable long-GOP file at a very low
bitrate), then `plan_job` on it as `dub` and the batch's plan task run it: probe (every packet
demuxed), keyframe index, dub audio decode, rests. Manifest: `--jobs` rows written as JSON Lines
and read back by the batch's (streaming) reader. Batch: `--plan-jobs` rows over `--videos` names
of one short 1080p clip (hard links: each name is a video of its own to the planner; default one
per job, so every plan probes) and one WAV (distinct outputs), read and planned by
`BatchRunner.plan` on a fresh embedded Ray cluster: one plan task per job (probe, audio levels,
checksums, the media index written to the job's work prefix), the phase before tracking. Fewer
videos than jobs is a manifest dubbing each video into several languages: a plan worker probes
a video it has seen once. Each part runs in a fresh
process; prints wall time and that process's peak RSS (VmHWM), and for the batch the driver's
CPU seconds and what one plan costs in process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import platform
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 25
GOP = 250
TIMED_PLANS = 20  # plans timed in process for the per-job cost


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
    from dataclasses import replace

    from musedub.pipeline.dub.options import DubOptions
    from musedub.pipeline.dub.plan import plan_job
    from musedub.pipeline.media.index import index_bytes, video_info

    tick = time.perf_counter()
    plan = plan_job(None, film, audio, film + ".out.mp4", DubOptions(length_policy="trim-audio"), "weights")
    seconds = time.perf_counter() - tick
    info = video_info(plan.base_row())
    index = len(index_bytes(info))
    as_returned = replace(plan, media_index=f"{film}.work/index-{plan.key}.npz")  # what a plan task returns
    rows = len(pickle.dumps(as_returned)), len(pickle.dumps(as_returned.base_row()))
    queue.put((seconds, peak_rss_mib(), plan.video_frames, len(plan.segments()), len(info.keyframes), index, *rows))


def read_jobs(queue: multiprocessing.Queue, manifest: str) -> None:
    from musedub.pipeline.dub.manifest import read_manifest

    tick = time.perf_counter()
    jobs = read_manifest(manifest)
    queue.put((time.perf_counter() - tick, peak_rss_mib(), len(jobs.jobs)))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def plan_one(queue: multiprocessing.Queue, videos: list[str], audio: str, out: str) -> None:
    """One job's plan in process, as a plan task runs it: the CPU seconds a plan worker spends on
    imports (the module that holds the plan task), wall and CPU seconds per plan (after a first,
    untimed one; each timed plan on a video of its own, so each probes), the plan task's CPU share,
    and the pickled size of the JobPlan it returns."""
    from dataclasses import replace

    cpu = cpu_seconds()
    from musedub.pipeline.dub import plan_task  # noqa: F401  (what every plan worker imports, besides Ray)
    from musedub.pipeline.dub.options import DubOptions
    from musedub.pipeline.dub.plan import plan_job

    imports, imported_rss = cpu_seconds() - cpu, peak_rss_mib()
    from musedub.pipeline.dub.batch import PLAN_CPUS

    options = DubOptions()
    plan = plan_job("warm", videos[-1], audio, f"{out}/warm.mp4", options, "weights")
    tick, cpu = time.perf_counter(), cpu_seconds()
    for i in range(TIMED_PLANS):
        plan_job(f"timed-{i}", videos[i], audio, f"{out}/timed-{i}.mp4", options, "weights")
    wall, cpu = (time.perf_counter() - tick) / TIMED_PLANS, (cpu_seconds() - cpu) / TIMED_PLANS
    row = len(pickle.dumps(replace(plan, media_index=f"{out}/.musedub-work/warm/index-{plan.key}.npz")))
    queue.put((imports, imported_rss, wall, cpu, PLAN_CPUS, row))


def plan_batch(queue: multiprocessing.Queue, manifest: str, weights: str, cpus: int) -> None:
    """Read the manifest and plan every job on a fresh embedded cluster, as `musedub batch` does."""
    from musedub.infra.ray_cluster import connect
    from musedub.pipeline.core.run import Run
    from musedub.pipeline.dub.batch import BatchRunner, BatchSettings
    from musedub.pipeline.dub.manifest import read_manifest

    tick = time.perf_counter()
    resources = connect(num_cpus=cpus)
    started = time.perf_counter() - tick
    tick = time.perf_counter()
    jobs = read_manifest(manifest).jobs
    read = time.perf_counter() - tick
    before = peak_rss_mib()
    settings = BatchSettings(weights=weights)
    run = Run(settings.runs_root(jobs))
    tick, cpu = time.perf_counter(), cpu_seconds()
    states, outcomes = BatchRunner(settings, resources).plan(jobs, run.errors)
    wall, cpu = time.perf_counter() - tick, cpu_seconds() - cpu
    failed = len(jobs) - len(states) - len(outcomes)
    queue.put((started, read, before, wall, cpu, peak_rss_mib(), len(states), failed))


def in_process(target, *args):  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: its peak RSS is the part's own
    queue = context.Queue()
    proc = context.Process(target=target, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def film_part(root: Path, seconds: int) -> None:
    from musedub.infra.sample_media import write_audio

    tick = time.perf_counter()
    film = write_film(root / "film.mp4", seconds)
    made = time.perf_counter() - tick
    print(f"film: {seconds} s 1080p25, {film.stat().st_size / 2**20:.1f} MiB, made in {made:.0f} s")
    noise = np.random.default_rng(0).normal(0, 0.1, seconds * 16000).astype(np.float32)
    audio = write_audio(root / "dub.wav", noise, 16000)
    took, rss, frames, segments, keyframes, index, plan_bytes, row_bytes = in_process(plan_film, str(film), str(audio))
    print(
        f"plan the film: {took:.1f} s, peak RSS {rss:.0f} MiB; {frames} frames, {segments} segments, "
        f"{keyframes} keyframes, media index {index / 2**20:.1f} MiB (a file in the work prefix); "
        f"pickled JobPlan {plan_bytes} bytes, base of its rows {row_bytes} bytes"
    )


def manifest_part(root: Path, jobs: int) -> None:
    manifest = root / "jobs.jsonl"
    with manifest.open("w") as handle:
        for i in range(jobs):
            row = {"job_id": f"title-{i:05d}-es", "video": f"s3://catalogue/titles/{i:05d}/master.mp4"}
            row |= {"audio": f"s3://catalogue/titles/{i:05d}/es.wav", "output": f"s3://dubs/es/{i:05d}.mp4"}
            handle.write(json.dumps(row) + "\n")
    took, rss, count = in_process(read_jobs, str(manifest))
    size = manifest.stat().st_size / 2**20
    print(f"read a {count}-job manifest ({size:.1f} MiB): {took:.1f} s, peak RSS {rss:.0f} MiB")


def video_names(clip: Path, count: int) -> list[str]:
    """`count` hard links to `clip`: distinct videos to the planner, one file on disk."""
    names = []
    for i in range(count):
        name = clip.with_name(f"video-{i:05d}.mp4")
        os.link(clip, name)
        names.append(str(name))
    return names


def batch_part(root: Path, jobs: int, seconds: float, cpus: int, videos: int) -> None:
    from musedub.infra.sample_media import write_audio, write_clip

    frames = round(seconds * FPS)
    clip = write_clip(root / "clip.mp4", Fraction(FPS), frames, size=(1920, 1080), scale=3.0, crf=23)
    names = video_names(clip, max(videos or jobs, TIMED_PLANS + 1))
    noise = np.random.default_rng(0).normal(0, 0.1, round(seconds * 16000)).astype(np.float32)
    audio = write_audio(root / "speech.wav", noise, 16000)
    out = root / "out"
    imports, imported_rss, wall, cpu, share, row = in_process(plan_one, names, str(audio), str(out))
    print(
        f"one plan in process ({frames} frames 1080p, {seconds:g} s WAV): {1000 * wall:.1f} ms wall, "
        f"{1000 * cpu:.1f} ms CPU; pickled JobPlan {row} bytes; a plan worker's imports {imports:.1f} CPU s "
        f"(RSS {imported_rss:.0f} MiB after them), {1 / share:.0f} plan workers a CPU"
    )
    manifest = root / "batch.jsonl"
    with manifest.open("w") as handle:
        for i in range(jobs):
            row_values = {"job_id": f"title-{i:05d}-es", "video": names[i % (videos or jobs)], "audio": str(audio)}
            handle.write(json.dumps({**row_values, "output": str(out / f"{i:05d}.mp4")}) + "\n")
    started, read, before, took, driver_cpu, rss, planned, failed = in_process(
        plan_batch, str(manifest), str(root / "weights"), cpus
    )
    print(
        f"plan a {jobs}-job batch of {videos or jobs} videos on {cpus} CPUs: {took:.1f} s "
        f"(cluster start {started:.1f} s, manifest read {read:.1f} s apart); driver peak RSS {rss:.0f} MiB "
        f"({before:.0f} MiB before planning), driver CPU "
        f"{driver_cpu:.1f} s; {planned} planned, {failed} failed"
    )
    in_ray = took * cpus / jobs
    left = 30 - imports / share  # each CPU first runs its plan workers' imports
    warm_cores = jobs * cpu / 30
    cold = f"{jobs * cpu / left:.0f}" if left > 0 else f"none (imports alone take {imports / share:.0f} s a CPU)"
    print(
        f"core-seconds per job: {cpu:.3f} planning in process, {in_ray:.3f} as Ray tasks here (workers' imports "
        f"and other load included); CPUs for {jobs} plans in 30 s: {warm_cores:.0f} with warm workers, {cold} "
        "counting each CPU's plan workers' imports"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=10_000, help="manifest rows read (0: skip)")
    parser.add_argument("--plan-jobs", type=int, default=10_000, help="jobs planned on Ray (0: skip)")
    parser.add_argument("--plan-seconds", type=float, default=2.0, help="length of the planned jobs' clip")
    parser.add_argument("--videos", type=int, default=0, help="distinct videos the planned jobs name (0: one each)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray cluster")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        if args.hours:
            film_part(root, int(args.hours * 3600))
        if args.jobs:
            manifest_part(root, args.jobs)
        if args.plan_jobs:
            batch_part(root, args.plan_jobs, args.plan_seconds, args.num_cpus, args.videos)


if __name__ == "__main__":
    main()
