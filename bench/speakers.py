"""What several faces and active-speaker detection (ASD) cost on the CPU path, on rendered clips of
real talking faces (tests/talking_faces.py), so the figures in docs/PERFORMANCE.md are measured.

    python bench/speakers.py

1. 1080p, 10 s, two faces taking turns: multi-face tracking, the ASD part (source audio level and
   `choose_in_video`; and what SyncNet adds when the weights hold one) and the old single-face
   tracker on the same frames held in memory, then a whole `musedub dub` with tiny random weights
   (a child process; its report's seconds).
2. 1080p, 3 s, 20 faces: tracking and choice chunk by chunk as `musedub faces` runs them.
3. 1080p, 2 s, 100 faces too small to track plus one normal face, against the one face alone.
4. 720p, one face, 10 s and 40 s: peak memory of chunked tracking, and the size of what is kept.

Peak memory of a step: tracemalloc's peak (Python and numpy allocations, not dlib's or FFmpeg's
own) and the process's VmHWM reset just before the step (/proc/self/clear_refs), with glibc
tuned as the runner tunes it. Prints a table per step and a final JSON line.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from talking_faces import Face, Shot, write_dialogue  # noqa: E402

from musedub.infra.malloc_tuning import tune_malloc
from musedub.infra.sample_media import write_audio
from musedub.models.landmarks import LandmarkDetector, load_landmark_detector
from musedub.models.syncnet import SYNCNET_CONFIG, SyncNet
from musedub.pipeline.core.stage import Row
from musedub.pipeline.dub.face_stages import TrackFacesStage, gap_frames, source_level, source_mel_windows
from musedub.pipeline.dub.job_faces import choose_in_video
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.dub.plan import track_chunks
from musedub.pipeline.face.choice import FaceChoice
from musedub.pipeline.face.multi_track import MultiFaceTracker
from musedub.pipeline.face.sync_speaker import SyncScorer
from musedub.pipeline.face.track import FaceTracker
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.frames import FrameReader
from musedub.pipeline.media.index import remember
from musedub.pipeline.media.probe import VideoInfo, probe_video

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FPS = 25
HD, FULL_HD = (1280, 720), (1920, 1080)
BLUE, SAND, GREY = (40, 90, 160), (200, 170, 60), (90, 110, 100)
T = TypeVar("T")


def timed(call: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def speeches(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Speech A and B repeated to `seconds`, so no clip ends in silence."""
    n = int(seconds * 16000)
    a, b = (np.resize(decode_audio_16k_mono(str(DATA / name)), n) for name in ("speech_16k.wav", "speech_b_16k.wav"))
    return a, b


def render(path: Path, shots: Sequence[Shot], size: tuple[int, int]) -> VideoInfo:
    seconds = sum(s.frames for s in shots) / FPS
    a, b = speeches(seconds)
    _, took = timed(lambda: write_dialogue(path, shots, a, b, FPS, size))
    info = probe_video(str(path))
    print(f"  rendered {path.name}: {info.frame_count} frames {size[0]}x{size[1]} in {took:.1f} s")
    return info


class PeakMemory:
    """Peak memory of a block: the process VmHWM reset on entry and, with `trace`, tracemalloc's peak
    (tracing costs the tracker about 12% of its speed, so timed runs go without it)."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.traced_peak = 0

    def __enter__(self) -> PeakMemory:
        self.hwm_reset = _reset_hwm()
        self.rss_before = _status_kib("VmRSS")
        if self.trace:
            tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.trace:
            _, self.traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        self.hwm = _status_kib("VmHWM")
        self.rss_after = _status_kib("VmRSS")

    def line(self) -> str:
        peak = f"{self.hwm / 1024:.0f} MiB" + ("" if self.hwm_reset else " (process peak: VmHWM not reset)")
        rss = f"RSS {self.rss_before / 1024:.0f} MiB before, peak {peak}, {self.rss_after / 1024:.0f} MiB after"
        return f"tracemalloc peak {self.traced_peak / 2**20:.1f} MiB; {rss}" if self.trace else rss

    def figures(self) -> dict[str, float]:
        rss = {
            "rss_before_mib": round(self.rss_before / 1024, 1),
            "rss_peak_mib": round(self.hwm / 1024, 1),
            "rss_after_mib": round(self.rss_after / 1024, 1),
        }
        return {"tracemalloc_peak_mib": round(self.traced_peak / 2**20, 2), **rss} if self.trace else rss


def _status_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def _reset_hwm() -> bool:
    """Linux resets VmHWM to the current RSS on '5' (since 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def multi_tracker(detector: LandmarkDetector, options: DubOptions, fps: Fraction) -> MultiFaceTracker:
    """Configured as TrackFacesStage configures it."""
    return MultiFaceTracker(
        detector,
        options.detect_every,
        min_size=options.face_min_size,
        max_faces=options.max_faces,
        gap=gap_frames(fps),
    )


def held_frames(info: VideoInfo) -> list[np.ndarray]:
    with FrameReader(info) as reader:
        return list(reader.frames(range(info.frame_count)))


def tracked_chunks(info: VideoInfo, options: DubOptions) -> list[Row]:
    """TrackFacesStage over the video's chunks, as `list_faces` runs it (frames streamed per chunk)."""
    key = f"speakers-{uuid.uuid4()}"
    remember(key, info)
    stage = TrackFacesStage("unused", options)
    stage.setup()
    base = {"job_key": key, "video": info.uri, "fps": str(info.fps), "still_fps": options.still_fps}
    base |= {"options": options.model_dump_json(), "frame_count": info.frame_count}
    return [
        stage({**base, "chunk_start": a, "chunk_stop": b})
        for a, b in track_chunks(info.frame_count, info.fps, options.segment_seconds)
    ]


def kept_bytes(chunks: Sequence[Row]) -> int:
    return sum(
        np.asarray(c["faces"]).nbytes + np.asarray(c["cuts"]).nbytes + np.asarray(c["level_db"]).nbytes for c in chunks
    )


def speakers_by_shot(choice: FaceChoice, shots: Sequence[Shot], size: tuple[int, int]) -> list[str]:
    """Per shot, the tracks chosen and the rendered face each one is (nearest centre), to check ASD by eye."""
    said = []
    for k, shot in enumerate(shots):
        primary = choice.primary[choice.shot == k]
        parts = []
        for t, count in zip(*np.unique(primary, return_counts=True), strict=True):
            if t == 0:
                parts.append(f"nobody {count}")
                continue
            centre = np.nanmean(choice.tracks[int(t)].centres(), axis=0) / size  # (2,) 0..1
            face = min(shot.faces, key=lambda f: float(np.hypot(*(centre - f.centre))))
            parts.append(f"track {t} = {face.who} at {face.centre} saying {face.speech} {count}")
        said.append(f"shot {k + 1} (hears {shot.audio}): " + ", ".join(parts) + f" of {len(primary)} frames")
    return said


def asd_share(root: Path, detector: LandmarkDetector) -> dict[str, Any]:
    """Step 1: ASD next to tracking and the whole CPU path, 1080p, 10 s, two faces taking turns."""
    print("1. ASD share of the CPU path: 1920x1080, 25 fps, 10 s, 2 shots of 5 s, two faces ~300 px")
    left, right = (0.3, 0.45), (0.7, 0.45)
    shots = [
        Shot(125, (Face("astronaut", left, 300, "a"), Face("portrait", right, 300, "b")), "a", BLUE),
        Shot(125, (Face("astronaut", left, 300, "a"), Face("portrait", right, 300, "b")), "b", SAND),
    ]  # shot 1: the left face says what is heard; shot 2 (speech b heard): the right one
    info = render(root / "dialogue.mp4", shots, FULL_HD)
    options = DubOptions(landmarks="dlib")
    frames, decode_s = timed(lambda: held_frames(info))
    n = len(frames)
    faces, multi_s = timed(lambda: multi_tracker(detector, options, info.fps).track(frames, options.smooth_radius))
    single, single_s = timed(lambda: FaceTracker(detector, options.detect_every).track(frames, options.smooth_radius))
    frames.clear()  # 1.5 GB of 1080p frames
    spans = track_chunks(info.frame_count, info.fps, options.segment_seconds)
    # The stage's chunk rows, from the one tracking of the whole clip (one 10 s chunk: the same result).
    rows: list[Row] = []
    for a, b in spans:
        marks = faces.trimmed(a, b).landmarks
        rows.append({"chunk_start": a, "chunk_stop": b, "faces": marks, "cuts": faces.cuts[a:b].copy()})
        rows[-1]["sync"] = np.full(marks.shape[:2], np.nan, np.float32)  # no syncnet/ in the weights

    def asd() -> FaceChoice:
        for row in rows:
            row["level_db"] = source_level(info.uri, info.fps, row["chunk_start"], row["chunk_stop"])
        return choose_in_video(rows, options, info)

    choice, asd_s = timed(asd)
    _, level_s = timed(lambda: [source_level(info.uri, info.fps, a, b) for a, b in spans])
    sync_s = syncnet_asd(info, rows, options)
    dub = whole_dub(root, info)
    total = dub["seconds"].get("total", sum(dub["seconds"].values()))
    found = (~np.isnan(faces.landmarks[:, :, 0, 0])).sum(axis=1).tolist()
    print(f"  decode {n} frames (held):        {rate(n, decode_s)}")
    print(f"  (a) multi-face tracking:         {rate(n, multi_s)}  tracks {faces.tracks}, frames seen {found}")
    print(f"  (c) single-face FaceTracker:     {rate(n, single_s)}  face found in {int(single.found.sum())}/{n}")
    print(f"  multi / single tracking cost:    {multi_s / single_s:.2f}x")
    print(f"  (b) ASD (level + join + scores + choice): {asd_s:.3f} s, of which source_level {level_s:.3f} s")
    print(f"      speaker chosen: {'; '.join(speakers_by_shot(choice, shots, FULL_HD))}")
    print(f"  (b') ASD by SyncNet (full size, random init; 2nd decode + crops + windows + choice): {sync_s:.2f} s")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in dub["seconds"].items() if k != "total")
    print(f"  (d) musedub dub, tiny random weights: {total:.1f} s ({rate(n, total).strip()}); {stages}")
    print(
        f"  ASD = {100 * asd_s / total:.2f}% of the whole dub (by SyncNet: {100 * sync_s / total:.1f}%); "
        f"tracking (a) = {100 * multi_s / total:.1f}%"
    )
    print("      (tiny random weights make Generate far cheaper than the real model: the real ASD share is smaller)")
    return {
        "frames": n,
        "decode_s": round(decode_s, 3),
        "multi_track_s": round(multi_s, 3),
        "single_track_s": round(single_s, 3),
        "multi_over_single": round(multi_s / single_s, 3),
        "tracks": faces.tracks,
        "asd_s": round(asd_s, 4),
        "source_level_s": round(level_s, 4),
        "syncnet_asd_s": round(sync_s, 3),
        "speakers": speakers_by_shot(choice, shots, FULL_HD),
        "dub_s": round(total, 2),
        "dub_stages_s": dub["seconds"],
        "asd_percent_of_dub": round(100 * asd_s / total, 3),
        "syncnet_asd_percent_of_dub": round(100 * sync_s / total, 2),
    }


def syncnet_asd(info: VideoInfo, rows: Sequence[Row], options: DubOptions) -> float:
    """Seconds of the SyncNet path TrackFacesStage adds when `syncnet/` is in the weights, plus the
    choice: a full-size SyncNet costs the same untrained, so a random one times it."""
    scorer = SyncScorer(SyncNet(SYNCNET_CONFIG).eval())
    scored = [dict(row) for row in rows]
    start = time.perf_counter()
    for row in scored:
        a, b = row["chunk_start"], row["chunk_stop"]
        windows = source_mel_windows(info.uri, info.fps, a, b)
        with FrameReader(info) as reader:
            row["sync"] = scorer.scores(reader.frames(range(a, b)), row["faces"], windows, info.height)
    choose_in_video(scored, options, info)
    return time.perf_counter() - start


def whole_dub(root: Path, info: VideoInfo) -> dict[str, Any]:
    """`musedub dub` in a child process (torch stays out of this one), with tiny random weights."""
    cli = [sys.executable, "-m", "musedub.jobs.cli"]
    weights = root / "weights"
    subprocess.run([*cli, "weights", "init-random", "--tiny", str(weights)], check=True, capture_output=True)
    _, b = speeches(info.frame_count / FPS)
    audio = write_audio(root / "dub_audio.wav", b, 16000)  # the dub's new speech
    out = root / "dubbed.mp4"
    args = ["dub", "--video", info.uri, "--audio", str(audio), "--output", str(out), "--weights", str(weights)]
    args += ["--landmarks", "dlib", "--length-policy", "trim-audio"]
    done = subprocess.run([*cli, *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"musedub dub failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(Path(str(out) + ".report.json").read_text())


def rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:7.1f} frames/s ({1000 * seconds / frames:7.1f} ms/frame)"


def listing(
    info: VideoInfo, options: DubOptions, trace: bool = False
) -> tuple[list[Row], FaceChoice, float, float, PeakMemory]:
    """Chunked tracking then the choice, as `musedub faces` runs them: rows, choice, seconds, memory."""
    with PeakMemory(trace) as memory:
        chunks, track_s = timed(lambda: tracked_chunks(info, options))
    choice, choose_s = timed(lambda: choose_in_video(chunks, options, info))
    return chunks, choice, track_s, choose_s, memory


def twenty_faces(root: Path) -> dict[str, Any]:
    """Step 2: a 5x4 grid of faces in one 3 s shot."""
    print("2. 20 faces: 1920x1080, 3 s, 5x4 grid of faces ~130 px; 7 say the speech heard, 7 the other, 6 silent")
    grid = tuple(
        Face(
            "astronaut" if (r + c) % 2 == 0 else "portrait",
            ((c + 0.5) / 5, (r + 0.5) / 4),
            130,
            ("a", "b", None)[(5 * r + c) % 3],
        )
        for r in range(4)
        for c in range(5)
    )
    shots = [Shot(75, grid, "a", BLUE)]
    info = render(root / "twenty.mp4", shots, FULL_HD)
    options = DubOptions(landmarks="dlib")
    chunks, choice, track_s, choose_s, memory = listing(info, options)
    *_, traced = listing(info, options, trace=True)
    n = info.frame_count
    seen = [int(t.seen.sum()) for t in choice.tracks.values()]
    print(f"  tracking (decode + 20 faces):    {rate(n, track_s)}")
    print(f"  choice (join + ASD + choose):    {choose_s:.3f} s")
    print(f"  tracks found: {len(choice.tracks)} (20 on screen); frames seen per track: min {min(seen, default=0)}")
    print(f"  speaker chosen: {'; '.join(speakers_by_shot(choice, shots, FULL_HD))}")
    print(f"  tracking memory: {memory.line()}")
    print(f"  again with tracemalloc: {traced.line()}")
    print(f"  chunk results kept: {kept_bytes(chunks)} bytes")
    return {
        "frames": n,
        "track_s": round(track_s, 3),
        "fps": round(n / track_s, 2),
        "choose_s": round(choose_s, 4),
        "tracks": len(choice.tracks),
        "kept_bytes": kept_bytes(chunks),
        **memory.figures(),
        "tracemalloc_peak_mib": traced.figures()["tracemalloc_peak_mib"],
    }


def tiny_crowd(root: Path) -> dict[str, Any]:
    """Step 3: 100 faces below face_min_size (and dlib's reach) beside one normal face."""
    print("3. 100 tiny faces: 1920x1080, 2 s, 10x10 grid of faces ~24 px + one 250 px face, vs that face alone")
    big = Face("portrait", (0.8, 0.5), 250, "a")
    crowd = tuple(
        Face("astronaut" if (r + c) % 2 == 0 else "portrait", (0.03 + 0.06 * c, 0.05 + 0.1 * r), 24, None)
        for r in range(10)
        for c in range(10)
    )  # the left 62% of the frame; the big face stands on the right
    options = DubOptions(landmarks="dlib")
    figures: dict[str, Any] = {}
    for name, faces in (("crowd", (*crowd, big)), ("alone", (big,))):
        info = render(root / f"{name}.mp4", [Shot(50, faces, "a", GREY)], FULL_HD)
        _, choice, track_s, _, _ = listing(info, options)
        n = info.frame_count
        print(f"  {name:5s} ({len(faces):3d} faces): tracking {rate(n, track_s)}  tracks found {len(choice.tracks)}")
        figures[name] = {"fps": round(n / track_s, 2), "tracks": len(choice.tracks)}
    print(f"  crowd / alone tracking cost: {figures['alone']['fps'] / figures['crowd']['fps']:.2f}x")
    return figures


def length_memory(root: Path) -> dict[str, Any]:
    """Step 4: one face, 10 s and 40 s of 720p, tracked in 10 s chunks."""
    print("4. Memory against length: 1280x720, one face ~200 px, tracked in 10 s chunks as `musedub faces` does")
    options = DubOptions(landmarks="dlib")
    figures: dict[str, Any] = {}
    for seconds in (10, 40):
        face = Face("astronaut", (0.5, 0.45), 200, "a")
        info = render(root / f"long{seconds}.mp4", [Shot(seconds * FPS, (face,), "a", BLUE)], HD)
        chunks, choice, track_s, _, memory = listing(info, options, trace=True)
        n = info.frame_count
        kept = kept_bytes(chunks)
        faces_bytes = sum(np.asarray(c["faces"]).nbytes for c in chunks)
        face_frames = sum(int((~np.isnan(np.asarray(c["faces"])[:, :, 0, 0])).sum()) for c in chunks)
        print(
            f"  {seconds:2d} s, {len(chunks)} chunks: tracking {rate(n, track_s)} (tracemalloc on), "
            f"tracks {len(choice.tracks)}"
        )
        print(f"        {memory.line()}")
        print(
            f"        kept: faces {faces_bytes} bytes ({faces_bytes / max(face_frames, 1):.0f} per face-frame, "
            f"{face_frames} face-frames), all chunk results {kept} bytes"
        )
        figures[f"{seconds}s"] = {
            "frames": n,
            "fps": round(n / track_s, 2),
            "tracks": len(choice.tracks),
            "faces_bytes": faces_bytes,
            "kept_bytes": kept,
            **memory.figures(),
        }
    return figures


def main() -> None:
    tune_malloc()  # as the runner and the stage actors do, so freed frames leave the RSS
    print(f"machine: {platform.machine()} {platform.system()}, python {platform.python_version()}")
    detector = load_landmark_detector("dlib", Path("unused"))
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        for name, step in (
            ("asd_share", lambda: asd_share(root, detector)),
            ("twenty_faces", lambda: twenty_faces(root)),
            ("tiny_crowd", lambda: tiny_crowd(root)),
            ("length_memory", lambda: length_memory(root)),
        ):
            results[name], took = timed(step)
            print(f"  ({took:.0f} s)")
    results["bench_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
