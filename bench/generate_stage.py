"""The production GenerateStage on a device: segments of crops in, generated crops out, host copies
included, eager and compiled, and its out-of-memory halving on a batch too big for the card.

    python bench/generate_stage.py --device cuda --size full --segments 6 --batch 64 --oom-batch 512 --ballast-gib 100
    python bench/generate_stage.py --device cpu --size tiny --segments 2 --batch 4 --oom-batch 0

Random init of the full published architectures, built on the device (the store's load path is
checked by bench/gpu_smoke.py); `--dtype auto` as the pipeline resolves it. One line per figure,
and `--json FILE` appends each as a JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from skimage.data import astronaut

from musedub.models.generator import MuseTalkGenerator
from musedub.models.unet import MUSETALK_UNET_CONFIG, TINY_UNET_CONFIG, MuseTalkUNet
from musedub.models.vae import SD_VAE_CONFIG, TINY_VAE_CONFIG, CropAutoencoder
from musedub.models.weights.store import resolve_device, resolve_dtype
from musedub.pipeline.dub.model_stages import GenerateStage
from musedub.pipeline.dub.options import DubOptions

SEGMENT_FRAMES = 250  # 10 s at 25 fps, the default segment


def build(size: str, device: torch.device, dtype: torch.dtype) -> MuseTalkGenerator:
    tiny = size == "tiny"
    with torch.device(device):
        vae = CropAutoencoder(AutoencoderKL.from_config(TINY_VAE_CONFIG if tiny else SD_VAE_CONFIG))
        unet = MuseTalkUNet(TINY_UNET_CONFIG if tiny else MUSETALK_UNET_CONFIG)
    return MuseTalkGenerator(vae, unet).to(dtype=dtype).eval().requires_grad_(False)


def segment_rows(count: int, frames: int, width: int, options: DubOptions) -> list[dict[str, Any]]:
    """`count` segments of `frames` face crops (shifted astronaut) with random prompts."""
    image, rng = astronaut(), np.random.default_rng(0)
    crops = np.stack([np.ascontiguousarray(image[i % 16 : i % 16 + 256, 120:376]) for i in range(frames)])
    prompts = rng.normal(size=(frames, 50, width)).astype(np.float32)
    return [{"crops": crops, "prompts": prompts, "options": options.model_dump_json()} for _ in range(count)]


def run_stage(stage: GenerateStage, rows: list[dict[str, Any]], device: torch.device) -> dict[str, float]:
    """Seconds of the first segment (compile, when compiled) and frames/s over the rest."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for row in rows:
        start = time.perf_counter()
        out = stage(row)["generated"]
        times.append(time.perf_counter() - start)
        assert out.shape == row["crops"].shape
    frames = sum(len(r["crops"]) for r in rows[1:])
    result = {"first_segment_s": times[0], "fps": frames / sum(times[1:]) if frames else 0.0}
    if device.type == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--frames", type=int, default=SEGMENT_FRAMES)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--oom-batch", type=int, default=512, help="a batch size that does not fit; 0 skips")
    parser.add_argument("--ballast-gib", type=float, default=0.0, help="GPU memory taken first, so --oom-batch fails")
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    print(f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}) dtype={dtype}")

    def record(**fields: Any) -> None:
        print("  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()))
        if args.json:
            with open(args.json, "a") as out:
                out.write(json.dumps({"bench": "generate_stage", **fields}) + "\n")

    torch.manual_seed(0)
    generator = build(args.size, device, dtype)
    width = generator.unet.audio_dim
    for mode in args.modes.split(","):
        options = DubOptions(batch_size=args.batch)
        stage = GenerateStage("unused", options, str(device), args.dtype, compile=mode == "compile")
        stage._generator = build(args.size, device, dtype) if mode == "compile" else generator
        if mode == "compile":
            stage._generator.load_state_dict(generator.state_dict())
            stage._generator.compile_static()
        rows = segment_rows(args.segments, args.frames, width, options)
        record(mode=mode, batch=args.batch, frames_per_segment=args.frames, **run_stage(stage, rows, device))
        del stage
    if args.oom_batch:
        ballast = torch.empty(int(args.ballast_gib * 2**30), dtype=torch.uint8, device=device)  # noqa: F841
        options = DubOptions(batch_size=args.oom_batch)
        stage = GenerateStage("unused", options, str(device), args.dtype)
        stage._generator = generator
        rows = segment_rows(2, args.oom_batch + args.oom_batch // 4, width, options)
        result = run_stage(stage, rows, device)
        record(mode="oom-halving", asked=args.oom_batch, settled=stage._fits or args.oom_batch, **result)


if __name__ == "__main__":
    main()
