"""Size and speed of the style generator's two models (random init): the lip-motion predictor per
window of frames and the renderer per denoising step and per DDIM sampling, in fp32.

    python bench/style_models.py --size full --batches 1,4 --steps 1,4 --iters 5 --threads 2     # CPU
    python bench/style_models.py --size full --batches 8,64 --steps 10,25 --device cuda

Each figure is the fastest and the median of `--iters` timed runs after one warm-up run; the load
average printed before and after tells whether other work shared the cores.
Figures go to docs/STYLE.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from musedub.models.style_predictor import (
    STYLE_PREDICTOR_CONFIG,
    TINY_STYLE_PREDICTOR_CONFIG,
    StylePredictor,
)
from musedub.models.style_renderer import (
    STYLE_RENDERER_CONFIG,
    TINY_STYLE_RENDERER_CONFIG,
    DDIMSampler,
    RenderConditions,
    StyleRenderer,
)


def timed(run: Callable[[], object], iters: int, device: torch.device) -> tuple[float, float]:
    """(fastest, median) seconds of `iters` runs after a warm-up."""
    run()
    seconds = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return min(seconds), statistics.median(seconds)


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def conditions_for(batch: int, references: int, size: int, device: torch.device) -> RenderConditions:
    mask = torch.zeros(batch, 1, size, size, device=device)
    mask[:, :, size // 2 :] = 1.0  # the lower half
    return RenderConditions(
        masked=torch.randn(batch, 4, size, size, device=device),
        mask=mask,
        motion=torch.rand(batch, 20, 2, device=device),
        references=torch.randn(batch, references, 4, size, size, device=device),
    )


def step_gflop(renderer: StyleRenderer, references: int, device: torch.device) -> float:
    """Floating-point operations of one denoising step of one frame, as torch's FLOP counter counts them."""
    size = renderer.config.latent_size
    with torch.inference_mode():
        prepared = renderer.prepare(conditions_for(1, references, size, device))
        with FlopCounterMode(display=False) as counter:
            renderer.denoise(torch.randn(1, 4, size, size, device=device), torch.tensor([500], device=device), prepared)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,4", help="renderer batch sizes (frames rendered at once)")
    parser.add_argument("--steps", default="1,4", help="DDIM step counts to sample with")
    parser.add_argument("--frames", type=int, default=50, help="predictor window: driving frames")
    parser.add_argument("--references", type=int, default=4, help="predictor: reference windows of --frames each")
    parser.add_argument("--references-per-frame", type=int, default=2, help="renderer: reference latents per frame")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    full = args.size == "full"
    print(
        f"device={device} x{torch.get_num_threads()} threads size={args.size} dtype=fp32 torch={torch.__version__} "
        f"machine={platform.machine()} {platform.processor() or ''}".rstrip()
    )
    print(f"1-min load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    torch.manual_seed(0)
    with torch.device(device):
        predictor = StylePredictor(STYLE_PREDICTOR_CONFIG if full else TINY_STYLE_PREDICTOR_CONFIG).eval()
        renderer_config = STYLE_RENDERER_CONFIG if full else TINY_STYLE_RENDERER_CONFIG
        renderer = StyleRenderer(renderer_config).eval()
    sampler = DDIMSampler(renderer_config)

    config = predictor.config
    prompt = (config.audio_frames * config.audio_states, config.audio_dim)
    frames, count = args.frames, args.references
    audio = torch.randn(1, frames, *prompt, device=device)
    reference_audio = torch.randn(1, count, frames, *prompt, device=device)
    reference_lips = torch.rand(1, count, frames, 20, 2, device=device)
    mask = torch.ones(1, count, frames, dtype=torch.bool, device=device)
    with torch.inference_mode():
        fastest, median = timed(lambda: predictor(audio, reference_audio, reference_lips, mask), args.iters, device)
    print(
        f"predictor {millions(predictor):.2f} M params: window of {frames} frames, {count} reference windows: "
        f"{1000 * fastest:.1f} ms (median {1000 * median:.1f}), {1000 * fastest / frames:.2f} ms/frame"
    )

    size = renderer_config.latent_size
    print(
        f"renderer {millions(renderer):.2f} M params, {args.references_per_frame} reference latents per frame, "
        f"{step_gflop(renderer, args.references_per_frame, device):.2f} GFLOP per frame and step"
    )
    for batch in (int(b) for b in args.batches.split(",")):
        conditions = conditions_for(batch, args.references_per_frame, size, device)
        noise = torch.randn(batch, 4, size, size, device=device)
        timesteps = torch.full((batch,), 500, device=device)
        with torch.inference_mode():
            prepared = renderer.prepare(conditions)
            fastest, median = timed(partial(renderer.denoise, noise, timesteps, prepared), args.iters, device)
        print(
            f"batch={batch:3d} one denoising step: {1000 * fastest / batch:8.1f} ms/frame "
            f"(median {1000 * median / batch:.1f})"
        )
        for steps in (int(s) for s in args.steps.split(",")):
            with torch.inference_mode():
                fastest, median = timed(partial(sampler.sample, renderer, conditions, noise, steps), args.iters, device)
            print(
                f"batch={batch:3d} DDIM {steps:3d} steps: {1000 * fastest / batch:8.1f} ms/frame "
                f"{batch / fastest:7.2f} frames/s (median {1000 * median / batch:.1f} ms/frame)"
            )

    print(f"1-min load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
