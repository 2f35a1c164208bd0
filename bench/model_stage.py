"""Throughput of the model stage: fused VAE encode x2 + UNet + VAE decode, the UNet alone, and
the whisper encoder, at the full published sizes (random init) or from a weights folder.

    python bench/model_stage.py --size full --batches 1 --iters 2      # CPU
    python bench/model_stage.py --size full --batches 8,16,32,64 --dtype bf16 --device cuda
    python bench/model_stage.py --size full --batches 8,16,32,64 --dtype bf16 --device cuda --compile --channels-last
    python bench/model_stage.py --size full --batches 8,32 --dtype bf16 --device cuda --vae-decode \\
        --diff-vs-fp32 bf16,fp16 --json results.jsonl

Prints one line per measurement; on CUDA each line ends with the peak GPU memory allocated
during that measurement (weights included). `--vae-decode` adds a line for the VAE decode alone.
`--diff-vs-fp32` runs the fused generator once on the same inputs in strict fp32 (no TF32) and in
each listed precision ("fp32" there means torch's default flags, i.e. TF32 convolutions on CUDA)
and prints the absolute difference of the uint8 pixels of the generated lower half.
`--json FILE` appends every figure as one JSON object per line.
Figures go to docs/PERFORMANCE.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from skimage.data import astronaut
from transformers import WhisperConfig, WhisperFeatureExtractor

from musedub.models.audio_encoder import TINY_WHISPER_CONFIG, WHISPER_TINY_CONFIG, WhisperAudioEncoder
from musedub.models.constants import WINDOW_SAMPLES
from musedub.models.generator import MuseTalkGenerator
from musedub.models.unet import MUSETALK_UNET_CONFIG, TINY_UNET_CONFIG, MuseTalkUNet
from musedub.models.vae import SD_VAE_CONFIG, TINY_VAE_CONFIG, CropAutoencoder
from musedub.models.weights.store import DTYPES, ModelStore, resolve_device

MIB = 2**20


def build(size: str, weights: str | None, device: torch.device) -> tuple[MuseTalkGenerator, WhisperAudioEncoder]:
    """fp32 generator on `device` and whisper encoder on the CPU; random init is done on `device` (fast on a GPU)."""
    if weights:
        store = ModelStore(weights)
        return store.load_generator(device=str(device)), store.load_audio_encoder(device="cpu")
    tiny = size == "tiny"
    with torch.device(device):
        vae = CropAutoencoder(AutoencoderKL.from_config(TINY_VAE_CONFIG if tiny else SD_VAE_CONFIG))
        unet = MuseTalkUNet(TINY_UNET_CONFIG if tiny else MUSETALK_UNET_CONFIG)
    config = WhisperConfig(**(TINY_WHISPER_CONFIG if tiny else WHISPER_TINY_CONFIG))
    audio = WhisperAudioEncoder(config, WhisperFeatureExtractor(feature_size=config.num_mel_bins))
    return MuseTalkGenerator(vae, unet).to(device).eval(), audio.eval()


def measure(fn: Callable[[], object], iters: int, device: torch.device) -> dict[str, float]:
    """Median wall time of `iters` calls after one timed warm-up call, and the peak GPU memory of all of them."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    first = time.perf_counter() - start
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    result = {"seconds": float(np.median(times)), "first_call_s": first}
    if cuda:
        result["peak_mib"] = torch.cuda.max_memory_allocated(device) / MIB
        result["peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) / MIB
    return result


def seconds_per_call(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Median wall time of `iters` calls after one warm-up call."""
    return measure(fn, iters, device)["seconds"]


@contextmanager
def strict_fp32() -> Iterator[None]:
    """Plain fp32 arithmetic: no TF32 in cuDNN convolutions or cuBLAS matmuls (no-op on the CPU)."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def output_difference(
    generator: MuseTalkGenerator, names: list[str], face: np.ndarray, batch: int, device: torch.device
) -> list[dict[str, Any]]:
    """|output(dtype) - output(strict fp32)| over the generated lower half, in uint8 levels, per dtype.

    `generator` is fp32; each dtype runs on a copy, the same crops (target = face, reference = the
    mirrored face) and the same random audio prompts.
    """
    gen = torch.Generator().manual_seed(1)
    targets = torch.from_numpy(np.repeat(face[None], batch, axis=0)).to(device)
    references = torch.from_numpy(np.repeat(np.ascontiguousarray(face[:, ::-1])[None], batch, axis=0)).to(device)
    prompts = torch.randn(batch, 50, generator.unet.audio_dim, generator=gen).to(device)
    with strict_fp32():
        reference = generator(targets, references, prompts)[:, 128:].to(torch.int16)  # (B, 128, 256, 3)
    rows = []
    for name in names:
        model = generator if name == "fp32" else copy.deepcopy(generator).to(DTYPES[name])
        out = model(targets, references, prompts)[:, 128:].to(torch.int16)
        diff = (out - reference).abs().float()
        rows.append(
            {
                "dtype": name,
                "batch": batch,
                "max_abs": int(diff.max()),
                "mean_abs": float(diff.mean()),
                "frac_over_2": float((diff > 2).float().mean()),
                # random weights can saturate the decoder: these say how much of the reference is live
                "ref_mean": float(reference.float().mean()),
                "ref_std": float(reference.float().std()),
                "ref_frac_saturated": float(((reference == 0) | (reference == 255)).float().mean()),
            }
        )
        del model, out
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--weights", help="weights folder/URI instead of random init")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the VAE encoder and decoder and the UNet, static shapes (first call = compile, printed)",
    )
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"],
        help="torch.compile mode (reduce-overhead and max-autotune capture CUDA graphs)",
    )
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--vae-decode", action="store_true", help="also time the VAE decode alone")
    parser.add_argument("--no-whisper", action="store_true", help="skip the whisper encoder line")
    parser.add_argument(
        "--diff-vs-fp32",
        default="",
        metavar="DTYPES",
        help="comma list of fp32/bf16/fp16: pixel difference of the fused output against strict fp32",
    )
    parser.add_argument("--diff-batch", type=int, default=8)
    parser.add_argument("--json", help="append one JSON object per figure to this file")
    args = parser.parse_args()
    diff_dtypes = [d for d in args.diff_vs_fp32.split(",") if d]
    if unknown := set(diff_dtypes) - set(DTYPES):
        parser.error(f"--diff-vs-fp32: unknown dtypes {sorted(unknown)}; use {', '.join(DTYPES)}")

    device, dtype = resolve_device(args.device), DTYPES[args.dtype]
    cuda = device.type == "cuda"
    name = (
        torch.cuda.get_device_name(device)
        if cuda
        else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()} threads"
    )
    source = args.weights or args.size
    config = {
        "device": name,
        "size": source,
        "dtype": args.dtype,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "compile_mode": args.compile_mode if args.compile else None,
        "torch": torch.__version__,
    }
    sink = open(args.json, "a") if args.json else nullcontext()  # noqa: SIM115 - closed by the with below
    with sink as out:

        def record(kind: str, **fields: Any) -> None:
            if out is not None:
                out.write(json.dumps({"kind": kind, **config, **fields}) + "\n")
                out.flush()

        tf32 = f" tf32(cudnn)={torch.backends.cudnn.allow_tf32} tf32(matmul)={torch.backends.cuda.matmul.allow_tf32}"
        print(
            f"device={name} size={source} dtype={args.dtype} channels_last={args.channels_last} "
            f"compile={args.compile} torch={torch.__version__}" + (tf32 if cuda else "")
        )
        record("header", cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if cuda else None)

        torch.manual_seed(0)
        start = time.perf_counter()
        generator, audio = build(args.size, args.weights, device)
        generator.requires_grad_(False)
        print(f"built in {time.perf_counter() - start:.1f} s")
        face = np.ascontiguousarray(astronaut()[:256, 128:384])  # (256, 256, 3) uint8

        if diff_dtypes:
            for row in output_difference(generator, diff_dtypes, face, args.diff_batch, device):
                print(
                    f"diff {row['dtype']:>4s} vs strict fp32, lower half, batch {row['batch']}: "
                    f"max {row['max_abs']:3d} mean {row['mean_abs']:.3f} levels, "
                    f"{100 * row['frac_over_2']:.2f}% over 2 levels "
                    f"(reference mean {row['ref_mean']:.1f} std {row['ref_std']:.1f}, "
                    f"{100 * row['ref_frac_saturated']:.1f}% saturated)"
                )
                record("diff", **row)

        generator = generator.to(dtype=dtype)
        if args.channels_last:
            generator = generator.to(memory_format=torch.channels_last)
        audio = audio.to(device).requires_grad_(False)
        if args.compile:
            generator.compile_static(args.compile_mode)  # one specialised graph per batch size, as a worker runs

        dim = generator.unet.audio_dim
        peak = 0.0  # MiB, the largest of the per-measurement peaks
        for batch in (int(b) for b in args.batches.split(",")):
            crops = torch.from_numpy(np.repeat(face[None], batch, axis=0)).to(device)  # (B, 256, 256, 3)
            prompts = torch.randn(batch, 50, dim, device=device)
            # The UNet and the decoder alone get the inputs they get inside the fused forward (inference
            # tensors, and the fused path's memory layout: its crops arrive channels-last), made after the
            # fused measurement so that a compiled module neither recompiles for them nor compiles early.
            labels = ["fused vae-enc x2 + unet + vae-dec", "unet alone"] + ["vae decode alone"] * args.vae_decode
            for label in labels:
                with torch.inference_mode():
                    if label.startswith("fused"):
                        m = measure(partial(generator, crops, crops, prompts), args.iters, device)
                        latents = generator.vae.unet_input(crops, crops)  # (B, 8, 32, 32)
                        tokens = prompts.to(dtype)
                        decoder_input = generator.unet(latents, tokens)  # (B, 4, 32, 32)
                    elif label.startswith("unet"):
                        m = measure(partial(generator.unet, latents, tokens), args.iters, device)
                    else:
                        m = measure(partial(generator.vae.decode, decoder_input), args.iters, device)
                seconds = m["seconds"]
                rate = f"{batch / seconds:8.2f} frames/s ({1000 * seconds / batch:8.1f} ms/frame)"
                line = f"batch={batch:3d} {label:34s} {rate}"
                if "peak_mib" in m:
                    line += f"  peak {m['peak_mib']:7.0f} MiB"
                    peak = max(peak, m["peak_mib"])
                if args.compile:
                    line += f"  first call (compile) {m['first_call_s']:.1f} s"
                print(line)
                record(
                    "measure",
                    label=label,
                    batch=batch,
                    frames_per_s=batch / seconds,
                    ms_per_frame=1000 * seconds / batch,
                    **m,
                )
            del crops, prompts, latents, tokens, decoder_input
        if not args.no_whisper:
            window = np.random.default_rng(0).standard_normal(WINDOW_SAMPLES).astype(np.float32) * 0.1
            whisper = seconds_per_call(lambda: audio.encode_windows([window]), args.iters, device)
            print(f"whisper encoder: {30 / whisper:8.1f} s of audio per second ({whisper:.3f} s per 30 s window)")
            record("whisper", seconds_per_window=whisper)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {rss:.0f} MiB")
        if cuda:
            print(f"peak GPU memory (largest measurement) {peak:.0f} MiB")
        record("end", peak_rss_mib=rss)


if __name__ == "__main__":
    main()
