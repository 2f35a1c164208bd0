"""The production GenerateStage on a device, per generator: segments of crops in, generated crops
out, host copies included; MuseTalk eager and compiled, the style generator per DDIM step count,
and the stage's out-of-memory halving on a batch too big for the card.

    python bench/generate_stage.py --device cuda --size full --segments 6 --batch 64 --oom-batch 512 --ballast-gib 100
    python bench/generate_stage.py --device cuda --size full --generator style --style-steps 1,4 --batch 32 \\
        --modes eager --oom-batch 0
    python bench/generate_stage.py --device cpu --size full --generator musetalk,style --style-steps 1,4 \\
        --segments 3 --frames 8 --batch 8 --modes eager --oom-batch 0 --threads 2 --flops

Random init of the full published architectures (or the TINY_* test configs), built on the device
and handed to the stage as its loaded generator, so no weights are written to disk (the store's
load path is checked by bench/gpu_smoke.py); `--dtype auto` as the pipeline resolves it. Crops are
the astronaut's face shifted a little per frame, prompts random at the generator's audio width,
and the style generator reads a synthetic reference of the documented shape (4 windows of 50
frames, 4 face crops) from a temporary file, as a job's reference is read in production.

Runs (MuseTalk per mode, style per step count) take turns segment by segment, so other work on
shared cores slows them alike. The first segment of each run warms up (and compiles, when
compiled); `fps` is over the rest and `best_fps` that of the fastest of them (the one least slowed
by other work); `peak_mib` (CUDA) is the most GPU memory allocated while one of its segments ran,
the weights of every generator the command built included.
`--flops` adds what no other work on the cores can change: torch's FLOP count per frame through the
generator, split into the VAE's encoder, its decoder and the rest (UNet, or renderer and predictor),
and per job (style: its reference latents, encoded once per job on a worker).
One line per figure, and `--json FILE` appends each as a JSON object; the 1-min load average at the
start and end says whether the cores were shared.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from skimage.data import astronaut
from torch.utils.flop_counter import FlopCounterMode

from musedub.models.generator import MuseTalkGenerator
from musedub.models.style_predictor import STYLE_PREDICTOR_CONFIG, TINY_STYLE_PREDICTOR_CONFIG, StylePredictor
from musedub.models.style_renderer import STYLE_RENDERER_CONFIG, TINY_STYLE_RENDERER_CONFIG, StyleRenderer
from musedub.models.unet import MUSETALK_UNET_CONFIG, TINY_UNET_CONFIG, MuseTalkUNet
from musedub.models.vae import SD_VAE_CONFIG, TINY_VAE_CONFIG, CropAutoencoder
from musedub.models.weights.store import resolve_device, resolve_dtype
from musedub.pipeline.dub.model_stages import GenerateStage
from musedub.pipeline.dub.options import DubOptions
from musedub.pipeline.face.crop_geometry import FaceStatus
from musedub.pipeline.generators.base import FaceGenerator, SegmentInputs
from musedub.pipeline.generators.musetalk import MuseTalkFaces
from musedub.pipeline.generators.style import StyleFaces
from musedub.pipeline.generators.style_reference import (
    ANY_TRACK,
    REFERENCE_CROPS,
    REFERENCE_WINDOWS,
    WINDOW_FRAMES,
    StyleReference,
    write_references,
)

SEGMENT_FRAMES = 250  # 10 s at 25 fps, the default segment
GENERATORS = ("musetalk", "style")
TRACK = 1  # the one face dubbed in every frame


def build_vae(tiny: bool) -> CropAutoencoder:
    return CropAutoencoder(AutoencoderKL.from_config(TINY_VAE_CONFIG if tiny else SD_VAE_CONFIG))


def build_musetalk(size: str, device: torch.device, dtype: torch.dtype) -> MuseTalkGenerator:
    tiny = size == "tiny"
    with torch.device(device):
        vae, unet = build_vae(tiny), MuseTalkUNet(TINY_UNET_CONFIG if tiny else MUSETALK_UNET_CONFIG)
    return MuseTalkGenerator(vae, unet).to(dtype=dtype).eval().requires_grad_(False)


def build_style(size: str, device: torch.device, dtype: torch.dtype) -> StyleFaces:
    """Predictor, renderer and VAE as `load_face_generator` hands them over: on `device` in `dtype`, eval."""
    tiny = size == "tiny"
    with torch.device(device):
        models = (
            StylePredictor(TINY_STYLE_PREDICTOR_CONFIG if tiny else STYLE_PREDICTOR_CONFIG),
            StyleRenderer(TINY_STYLE_RENDERER_CONFIG if tiny else STYLE_RENDERER_CONFIG),
            build_vae(tiny),
        )
    predictor, renderer, vae = (m.to(dtype=dtype).eval().requires_grad_(False) for m in models)
    return StyleFaces(predictor, renderer, vae)  # type: ignore[arg-type]


def face_crops(frames: int) -> np.ndarray:
    """(frames, 256, 256, 3) uint8: the astronaut's face, shifted down 0..15 px frame by frame."""
    image = astronaut()
    return np.stack([np.ascontiguousarray(image[i % 16 : i % 16 + 256, 120:376]) for i in range(frames)])


def synthetic_reference(width: int, seed: int) -> StyleReference:
    """A reference of the shape a job builds: REFERENCE_WINDOWS windows of WINDOW_FRAMES frames
    (random prompts, mouth points drawn in the middle of the crop box) and REFERENCE_CROPS faces."""
    rng = np.random.default_rng(seed)
    windows = (REFERENCE_WINDOWS, WINDOW_FRAMES)
    return StyleReference(
        audio=rng.normal(size=(*windows, 50, width)).astype(np.float32),  # (R, L, 50, D)
        lips=rng.uniform(0.35, 0.75, size=(*windows, 20, 2)).astype(np.float32),  # (R, L, 20, 2)
        mask=np.ones(windows, bool),  # (R, L)
        crops=face_crops(REFERENCE_CROPS * 4)[::4],  # (N, 256, 256, 3)
    )


def segment_rows(
    count: int, frames: int, width: int, options: DubOptions, job: str, reference: str = ""
) -> list[dict[str, Any]]:
    """`count` consecutive segments of one job, `frames` face crops each, with random prompts."""
    crops, rng = face_crops(frames), np.random.default_rng(0)
    rows = []
    for i in range(count):
        rows.append(
            {
                "crops": crops,
                "prompts": rng.normal(size=(frames, 50, width)).astype(np.float32),  # (k, 50, D)
                "options": options.model_dump_json(),
                "status": np.full(frames, FaceStatus.OK, np.int8),
                "dubbed": np.full(frames, TRACK, np.int32),
                "start": i * frames,
                "stop": (i + 1) * frames,
                "content_key": job,
                "style_reference": reference,
            }
        )
    return rows


@dataclass
class Run:
    """One line of the bench: a stage with its generator loaded, and one job's segments to time."""

    fields: dict[str, Any]  # what the line says about the run: generator, steps, mode, batch
    stage: GenerateStage
    rows: list[dict[str, Any]]
    times: list[float] = field(default_factory=list)
    peak_mib: float = 0.0

    def result(self) -> dict[str, Any]:
        """Seconds of the first segment (compile, when compiled); frames/s over the rest, and of the fastest."""
        sizes = [len(row["crops"]) for row in self.rows]
        result = {
            **self.fields,
            "frames_per_segment": sizes[0],
            "first_segment_s": self.times[0],
            "fps": sum(sizes[1:]) / sum(self.times[1:]),
            "best_fps": max(n / t for n, t in zip(sizes[1:], self.times[1:], strict=True)),
        }
        return {**result, "peak_mib": self.peak_mib} if self.peak_mib else result


def run_in_turns(runs: list[Run], device: torch.device) -> None:
    """Segment i of every run, then segment i + 1 of every run: other work on shared cores slows all
    runs alike, so their ratios hold. A segment's time ends with its faces on the host."""
    for i in range(max(len(run.rows) for run in runs)):
        for run in (run for run in runs if i < len(run.rows)):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            out = run.stage(run.rows[i])["generated"]
            run.times.append(time.perf_counter() - start)
            assert out.shape == run.rows[i]["crops"].shape
            if device.type == "cuda":
                run.peak_mib = max(run.peak_mib, torch.cuda.max_memory_allocated(device) / 2**20)


def flop_counts(generator: FaceGenerator, row: dict[str, Any], style_steps: int, reference: str) -> dict[str, float]:
    """GFLOP by torch's counter, the generator called as the stage calls it: per frame (a batch of
    one), split into the VAE's encoder, its decoder and the rest; per segment frame (style: the
    predictor); per job (segment() of a job `generator` has not seen, less segment() again: style's
    reference latents). `reference` must be new to `generator`."""
    device = generator.device
    inputs = SegmentInputs(
        crops=torch.from_numpy(row["crops"]).to(device),  # (k, 256, 256, 3)
        prompts=torch.from_numpy(row["prompts"]).to(device),  # (k, 50, D)
        seed_key=row["content_key"],
        frames=np.arange(row["start"], row["stop"]),
        tracks=row["dubbed"],
        style_reference=reference,
        style_steps=style_steps,
    )
    with FlopCounterMode(display=False) as new_job:
        generator.segment(inputs)
    with FlopCounterMode(display=False) as segment:
        faces = generator.segment(inputs)
    with FlopCounterMode(display=False) as frame:
        faces.run(faces.take(torch.zeros(1, dtype=torch.long, device=device)))
    by_module = {name: sum(ops.values()) for name, ops in frame.get_flop_counts().items()}
    # the VAE's halves: "Encoder"/"Decoder" when called alone (style), "...vae.encoder" inside MuseTalk
    encode = sum(n for name, n in by_module.items() if name == "Encoder" or name.endswith("vae.encoder"))
    decode = sum(n for name, n in by_module.items() if name == "Decoder" or name.endswith("vae.decoder"))
    total = frame.get_total_flops()
    return {
        "gflop_per_frame": total / 1e9,
        "vae_encode_gflop": encode / 1e9,
        "vae_decode_gflop": decode / 1e9,
        "rest_gflop": (total - encode - decode) / 1e9,
        "segment_gflop_per_frame": segment.get_total_flops() / len(inputs.crops) / 1e9,
        "per_job_gflop": (new_job.get_total_flops() - segment.get_total_flops()) / 1e9,
    }


def shown(value: Any) -> str:
    """Floats with 2 decimals, or 3 significant digits under 1 (a fps of 0.071, a GFLOP of 0.006)."""
    if not isinstance(value, float):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def stage_with(
    generator: FaceGenerator,
    options: DubOptions,
    device: torch.device,
    dtype: str,
    compile: bool = False,
    segments: int = 1,
) -> GenerateStage:
    """A GenerateStage whose worker has `generator` loaded already (what setup() would load from weights)."""
    stage = GenerateStage("unused", options, str(device), dtype, compile=compile, segments=segments)
    stage._generators[options.generator] = generator
    return stage


Counted = tuple[dict[str, Any], FaceGenerator, dict[str, Any], str]  # fields, generator, a segment, a new reference


def plan_runs(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype, folder: str
) -> tuple[list[Run], list[Counted], MuseTalkGenerator | None]:
    """The runs to time (MuseTalk per mode, style per step count), what to count FLOPs of, and the
    MuseTalk model (for the out-of-memory check). Style references are written under `folder`."""
    runs: list[Run] = []
    counted: list[Counted] = []
    musetalk: MuseTalkGenerator | None = None
    if "musetalk" in args.generator:
        musetalk = build_musetalk(args.size, device, dtype)
        options = DubOptions(batch_size=args.batch)
        rows = segment_rows(args.segments, args.frames, musetalk.unet.audio_dim, options, "musetalk-job")
        for mode in (m for m in args.modes.split(",") if m):
            generator = MuseTalkFaces(musetalk)
            if mode == "compile":
                generator = MuseTalkFaces(build_musetalk(args.size, device, dtype))
                generator.model.load_state_dict(musetalk.state_dict())
                generator.compile_static()
            stage = stage_with(generator, options, device, args.dtype, compile=mode == "compile")
            runs.append(Run({"generator": "musetalk", "mode": mode, "batch": args.batch}, stage, rows))
        counted.append(({"generator": "musetalk"}, MuseTalkFaces(musetalk), rows[0], ""))
    if "style" in args.generator:
        style = build_style(args.size, device, dtype)
        width = style.predictor.config.audio_dim
        # the timed job's reference, then one the generator has not seen for each FLOP count
        references = [str(Path(folder, f"job{j}.npz")) for j in range(1 + len(args.style_steps))]
        for j, uri in enumerate(references):
            write_references({ANY_TRACK: synthetic_reference(width, seed=j)}, uri)
        for k, steps in enumerate(args.style_steps):
            options = DubOptions(
                generator="style", style_reference=references[0], style_steps=steps, batch_size=args.batch
            )
            rows = segment_rows(args.segments, args.frames, width, options, "style-job", references[0])
            fields = {"generator": "style", "steps": steps, "mode": "eager", "batch": args.batch}
            runs.append(Run(fields, stage_with(style, options, device, args.dtype), rows))
            counted.append(({"generator": "style", "steps": steps}, style, rows[0], references[1 + k]))
    return runs, counted, musetalk


def across(
    generator: FaceGenerator, rows: list[dict[str, Any]], segments: int, device: torch.device, dtype: str
) -> dict[str, Any]:
    """The rows one at a time, then `segments` at a time from threads into one stage that fills its
    batches across them (as a GPU actor of split pools does): frames/s of each (after a warm-up
    row) and whether every frame came out with the same bits."""
    options = DubOptions.model_validate_json(rows[0]["options"])
    alone = stage_with(generator, options, device, dtype)
    alone(rows[0])
    start = time.perf_counter()
    expected = [alone(row)["generated"] for row in rows]
    alone_s = time.perf_counter() - start
    shared = stage_with(generator, options, device, dtype, segments=segments)
    shared(rows[0])
    start = time.perf_counter()
    with ThreadPoolExecutor(segments) as pool:
        got = [out["generated"] for out in pool.map(shared, rows)]
    across_s = time.perf_counter() - start
    frames = sum(len(row["crops"]) for row in rows)
    stats = shared.batches
    return {
        "segments_at_once": segments,
        "alone_fps": frames / alone_s,
        "across_fps": frames / across_s,
        "mixed_batches": stats.mixed,
        "padding_frames": stats.padding,
        "identical": all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--generator", default="musetalk", help="musetalk, style, or both: musetalk,style")
    parser.add_argument("--style-steps", default="1,4", help="style: DDIM step counts, one run each")
    parser.add_argument("--segments", type=int, default=6, help="per run; the first warms up")
    parser.add_argument("--frames", type=int, default=SEGMENT_FRAMES)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--oom-batch", type=int, default=512, help="a batch size that does not fit; 0 skips")
    parser.add_argument("--ballast-gib", type=float, default=0.0, help="GPU memory taken first, so --oom-batch fails")
    parser.add_argument(
        "--modes", default="eager,compile", help="musetalk: eager, compile (style runs eager); '' for none"
    )
    parser.add_argument("--flops", action="store_true", help="also count FLOPs per frame and per job")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--across", type=int, default=0, help="musetalk: also N segments at once into one stage")
    parser.add_argument("--json")
    args = parser.parse_args()
    args.generator = args.generator.split(",")
    args.style_steps = [int(s) for s in args.style_steps.split(",")]
    if unknown := set(args.generator) - set(GENERATORS):
        parser.error(f"--generator: {', '.join(sorted(unknown))} is not one of {', '.join(GENERATORS)}")
    if args.oom_batch and "musetalk" not in args.generator:
        parser.error("--oom-batch runs MuseTalk: add musetalk to --generator, or pass --oom-batch 0")
    if args.segments < 2:
        parser.error("--segments must be at least 2: the first one warms up")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device={device} ({name}) x{torch.get_num_threads()} threads dtype={dtype} size={args.size} "
        f"torch={torch.__version__} machine={platform.machine()}"
    )
    print(f"1-min load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    def record(**fields: Any) -> None:
        print("  ".join(f"{k}={shown(v)}" for k, v in fields.items()))
        if args.json:
            with open(args.json, "a") as out:
                out.write(json.dumps({"bench": "generate_stage", "size": args.size, "dtype": str(dtype), **fields}))
                out.write("\n")

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        runs, counted, musetalk = plan_runs(args, device, dtype, folder)
        if runs:
            run_in_turns(runs, device)
        for run in runs:
            record(**run.result())
        for fields, generator, row, reference in counted if args.flops else []:
            record(**fields, mode="flops", **flop_counts(generator, row, fields.get("steps", 1), reference))

    if args.across and musetalk is not None:
        options = DubOptions(batch_size=args.batch)
        rows = segment_rows(2 * args.across, args.frames, musetalk.unet.audio_dim, options, "across-job")
        record(
            generator="musetalk",
            mode="across",
            batch=args.batch,
            **across(MuseTalkFaces(musetalk), rows, args.across, device, args.dtype),
        )
    if args.oom_batch:
        assert musetalk is not None
        ballast = torch.empty(int(args.ballast_gib * 2**30), dtype=torch.uint8, device=device)  # noqa: F841
        options = DubOptions(batch_size=args.oom_batch)
        stage = stage_with(MuseTalkFaces(musetalk), options, device, args.dtype)
        rows = segment_rows(2, args.oom_batch + args.oom_batch // 4, musetalk.unet.audio_dim, options, "oom-job")
        oom = Run({"generator": "musetalk", "mode": "oom-halving", "asked": args.oom_batch}, stage, rows)
        run_in_turns([oom], device)
        record(**oom.result(), settled=stage.fits or args.oom_batch)
    print(f"1-min load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
