"""Bytes fetched from object storage per job, over the object's size, for the video and the dub audio.

    python bench/read_amplification.py --seconds 30 90 --segment-seconds 5 [--ray]

Starts moto's S3 server on loopback with a counting HTTP proxy in front of it (tests/s3_proxy.py),
so every GET and HEAD of every process is seen, uploads a talking-head clip of each length
(640x360 H.264 with AAC, as a catalogue master's audio track would be) and its dub audio (16 kHz
WAV), dubs it from s3:// to s3:// in process (`LocalRunner`) and, with `--ray`, as a one-job
batch on a fresh local Ray cluster, each with an empty block cache. Prints, per object, bytes
fetched / object size, GET and HEAD requests. Tiny random weights, dlib landmarks.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from batch_run import Quiet  # noqa: E402
from dub_path import long_speech  # noqa: E402
from s3_proxy import ObjectCounts, counting_proxy  # noqa: E402

from musedub.infra.sample_media import write_clip  # noqa: E402
from musedub.models.weights.random import write_random_weights  # noqa: E402
from musedub.pipeline.dub.options import DubOptions  # noqa: E402

BUCKET = "bench"
FPS = Fraction(25)


def start_moto() -> tuple[subprocess.Popen, str]:
    binary = shutil.which("moto_server")
    if not binary:
        sys.exit("moto_server missing: pip install -e '.[test]'")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit("moto_server did not start within 30 s")
            time.sleep(0.1)


def upload(path: Path, key: str) -> int:
    import boto3

    boto3.client("s3").upload_file(str(path), BUCKET, key)
    return path.stat().st_size


def line(name: str, counts: ObjectCounts, key: str, size: int) -> str:
    fetched, gets, heads = counts.of(BUCKET, key)
    return f"  {name:6s} {size / 2**20:7.2f} MiB  fetched {fetched / size:5.2f}x  {gets:4d} GETs  {heads:3d} HEADs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 90.0])
    parser.add_argument("--segment-seconds", type=float, default=5.0)
    parser.add_argument("--ray", action="store_true", help="also run each job as a batch on a local Ray cluster")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    moto, endpoint = start_moto()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    try:
        with counting_proxy(endpoint) as (proxy, counts), tempfile.TemporaryDirectory() as work:
            os.environ["AWS_ENDPOINT_URL"] = proxy
            import boto3

            boto3.client("s3").create_bucket(Bucket=BUCKET)
            root = Path(work)
            weights = str(write_random_weights(root / "weights", tiny=True).root)
            options = DubOptions(landmarks="dlib", segment_seconds=args.segment_seconds)
            for seconds in args.seconds:
                speech = long_speech(root / f"speech{seconds:g}.wav", seconds)
                from musedub.pipeline.media.audio_decode import decode_audio_16k_mono

                clip = write_clip(
                    root / f"clip{seconds:g}.mp4",
                    FPS,
                    int(seconds * FPS),
                    size=(640, 360),
                    crf=18,
                    audio=decode_audio_16k_mono(str(speech)),
                )
                sizes = {"video": upload(clip, f"in/{clip.name}"), "audio": upload(speech, f"in/{speech.name}")}
                keys = {"video": f"in/{clip.name}", "audio": f"in/{speech.name}"}
                runs = ["dub"] + (["batch"] if args.ray else [])
                for run in runs:
                    os.environ["MUSEDUB_CACHE_DIR"] = str(root / f"cache-{run}-{seconds:g}")
                    counts.reset()
                    tick = time.perf_counter()
                    video, audio = (f"s3://{BUCKET}/{keys[k]}" for k in ("video", "audio"))
                    output = f"s3://{BUCKET}/out/{run}{seconds:g}.mp4"
                    if run == "dub":
                        from musedub.pipeline.dub.local_runner import LocalRunner

                        LocalRunner(options, weights, "cpu").dub(video, audio, output)
                    else:
                        run_batch(options, weights, video, audio, output, root / f"work-{seconds:g}")
                    took = time.perf_counter() - tick
                    print(f"{run}, {seconds:g} s clip, segments of {args.segment_seconds:g} s ({took:.0f} s):")
                    for name in ("video", "audio"):
                        print(line(name, counts, keys[name], sizes[name]))
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def run_batch(options: DubOptions, weights: str, video: str, audio: str, output: str, work: Path) -> None:
    import ray

    from musedub.infra.ray_cluster import connect
    from musedub.pipeline.dub.batch import BatchRunner, BatchSettings
    from musedub.pipeline.dub.manifest import JobSpec

    resources = connect(num_cpus=os.cpu_count() or 2)
    try:
        settings = BatchSettings(weights=weights, options=options, device="cpu")
        spec = JobSpec(job_id="j", video=video, audio=audio, output=output)
        outcomes = BatchRunner(settings, resources).run([spec], Quiet())
        assert all(o.status == "done" for o in outcomes.outcomes), [o.error for o in outcomes.outcomes]
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
