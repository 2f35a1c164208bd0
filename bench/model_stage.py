"""Throughput of the model stage: fused VAE encode x2 + UNet + VAE decode, the UNet alone, and
the whisper encoder, at the full published sizes (random init) or from a weights folder.

    python bench/model_stage.py --size full --batches 1 --iters 2      # CPU
    python bench/model_stage.py --size full --batches 8,16,32,64 --dtype bf16 --device cuda
    python bench/model_stage.py --size full --batches 8,16,32,64 --dtype bf16 --device cuda --compile --channels-last

Prints one line per measurement; figures go to docs/PERFORMANCE.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from diffusers import AutoencoderKL
from skimage.data import astronaut
from transformers import WhisperConfig, WhisperFeatureExtractor

from musedub.models.audio_encoder import TINY_WHISPER_CONFIG, WHISPER_TINY_CONFIG, WINDOW_SAMPLES, WhisperAudioEncoder
from musedub.models.generator import MuseTalkGenerator
from musedub.models.unet import MUSETALK_UNET_CONFIG, TINY_UNET_CONFIG, MuseTalkUNet
from musedub.models.vae import SD_VAE_CONFIG, TINY_VAE_CONFIG, CropAutoencoder
from musedub.models.weights.store import DTYPES, ModelStore, resolve_device


def build(size: str, weights: str | None) -> tuple[MuseTalkGenerator, WhisperAudioEncoder]:
    if weights:
        store = ModelStore(weights)
        return store.load_generator(device="cpu"), store.load_audio_encoder(device="cpu")
    tiny = size == "tiny"
    vae = CropAutoencoder(AutoencoderKL.from_config(TINY_VAE_CONFIG if tiny else SD_VAE_CONFIG))
    unet = MuseTalkUNet(TINY_UNET_CONFIG if tiny else MUSETALK_UNET_CONFIG)
    config = WhisperConfig(**(TINY_WHISPER_CONFIG if tiny else WHISPER_TINY_CONFIG))
    audio = WhisperAudioEncoder(config, WhisperFeatureExtractor(feature_size=config.num_mel_bins))
    return MuseTalkGenerator(vae, unet).eval(), audio.eval()


def seconds_per_call(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Median wall time of `iters` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--weights", help="weights folder/URI instead of random init")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the VAE and the UNet (warm-up excluded)")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()

    device, dtype = resolve_device(args.device), DTYPES[args.dtype]
    torch.manual_seed(0)
    generator, audio = build(args.size, args.weights)
    generator = generator.to(device=device, dtype=dtype).requires_grad_(False)
    if args.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    audio = audio.to(device).requires_grad_(False)
    if args.compile:
        generator.vae = torch.compile(generator.vae)  # type: ignore[assignment]
        generator.unet = torch.compile(generator.unet)  # type: ignore[assignment]
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()} threads"
    )
    source = args.weights or args.size
    print(
        f"device={name} size={source} dtype={args.dtype} channels_last={args.channels_last} "
        f"compile={args.compile} torch={torch.__version__}"
    )

    face = np.ascontiguousarray(astronaut()[:256, 128:384])  # (256, 256, 3) uint8
    dim = generator.unet.audio_dim
    for batch in (int(b) for b in args.batches.split(",")):
        crops = torch.from_numpy(np.repeat(face[None], batch, axis=0)).to(device)  # (B, 256, 256, 3)
        prompts = torch.randn(batch, 50, dim, device=device)
        latents = torch.randn(batch, 8, 32, 32, device=device, dtype=dtype)
        tokens = prompts.to(dtype)
        fused = seconds_per_call(partial(generator, crops, crops, prompts), args.iters, device)
        with torch.inference_mode():
            unet = seconds_per_call(partial(generator.unet, latents, tokens), args.iters, device)
        for label, seconds in (("fused vae-enc x2 + unet + vae-dec", fused), ("unet alone", unet)):
            print(
                f"batch={batch:3d} {label:34s} {batch / seconds:8.2f} frames/s ({1000 * seconds / batch:8.1f} ms/frame)"
            )
    window = np.random.default_rng(0).standard_normal(WINDOW_SAMPLES).astype(np.float32) * 0.1
    whisper = seconds_per_call(lambda: audio.encode_windows([window]), args.iters, device)
    print(f"whisper encoder: {30 / whisper:8.1f} s of audio per second ({whisper:.3f} s per 30 s window)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
