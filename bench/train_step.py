"""Steps/s and peak memory of MuseTalk's training step (`TrainStep`), stage 1 and stage 2, per precision and
activation checkpointing, at the full published sizes (random init) or the tiny test sizes.

    python bench/train_step.py --device cuda --json results.jsonl     # stage 1 at batch 32, stage 2 at 2 x 16 frames
    python bench/train_step.py --device cpu --stage1-batches 1,2 --stage2-samples 0 --steps 1

Random UNet, VAE, VGG19, discriminators and SyncNet are built on the device, set up as
`loop.build_models` sets up loaded ones, so no weights are written to disk. The batch is fixed and
synthetic: the astronaut's face as targets, its mirror as references, random prompts and mel. Stage 2
runs its full loss (both GANs and feature matching from step 0, the sync loss on 16 frames). Each
configuration gets a fresh `TrainStep` (fused AdamW, as in training) and runs one warm-up step and
`--steps` timed steps, each one micro-batch and one optimiser step (the reference's stage 2 accumulates 8
micro-batches a step: that multiplies the time, not the memory). Peak memory spans all of them, since the
first step only creates AdamW's states:
- CUDA: `torch.cuda.max_memory_allocated`, weights of every model included, and its growth over them.
- CPU: growth of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) over the RSS after
  the previous configuration was freed: gradients + AdamW states + activations + transients.
After the timed steps, one more forward pass of the generator and its losses measures what it leaves alive
for the backward pass (CUDA: allocated bytes; CPU: RSS after glibc's malloc_trim), the part that grows with
the batch.
Settings run bf16 + checkpointing first and plain fp32 last, each for stage 1 and then stage 2, so a
deadline cuts the least needed. A configuration that runs out of GPU memory prints OOM and the next one runs.
Before them, the AdamW step alone on the UNet's parameters, fused against torch's default (foreach).
`--json FILE` appends each figure as one JSON object; the 1-min load average says whether cores were shared.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from skimage.data import astronaut

from musedub.models.discriminator import DISCRIMINATOR_WIDTH, TINY_DISCRIMINATOR_WIDTH
from musedub.models.syncnet import SYNC_FRAMES, SYNCNET_CONFIG, TINY_SYNCNET_CONFIG, SyncNet
from musedub.models.unet import MUSETALK_UNET_CONFIG, TINY_UNET_CONFIG, MuseTalkUNet
from musedub.models.vae import SD_VAE_CONFIG, TINY_VAE_CONFIG, CropAutoencoder
from musedub.models.vgg19 import TINY_VGG19_WIDTHS, VGG19_WIDTHS, VGG19Features
from musedub.models.weights.store import resolve_device
from musedub.pipeline.train.config import TrainConfig
from musedub.pipeline.train.step import TrainModels, TrainStep, build_discriminators

MIB = 2**20
GIB = 2**30
# (precision, checkpointing) in the order they run: what fits first
ORDER = [("bf16", True), ("bf16", False), ("fp32", True), ("fp32", False)]


def random_models(size: str, device: torch.device) -> TrainModels:
    """Every model a stage-2 step reads, random, on `device`; trainable/frozen as `loop.build_models` leaves them."""
    tiny = size == "tiny"
    with torch.device(device):
        unet = MuseTalkUNet(TINY_UNET_CONFIG if tiny else MUSETALK_UNET_CONFIG)
        vae = CropAutoencoder(AutoencoderKL.from_config(TINY_VAE_CONFIG if tiny else SD_VAE_CONFIG))
        vgg = VGG19Features(TINY_VGG19_WIDTHS if tiny else VGG19_WIDTHS)
        face_d, mouth_d = build_discriminators(TINY_DISCRIMINATOR_WIDTH if tiny else DISCRIMINATOR_WIDTH)
        syncnet = SyncNet(TINY_SYNCNET_CONFIG if tiny else SYNCNET_CONFIG)
    return TrainModels(
        unet=unet.train().requires_grad_(True),
        vae=vae.eval().requires_grad_(False),
        vgg=vgg.eval().requires_grad_(False),
        face_d=face_d,
        mouth_d=mouth_d,
        syncnet=syncnet.eval().requires_grad_(False),
    )


def stage_models(models: TrainModels, stage: int) -> TrainModels:
    """Stage 1 reads no discriminator and no SyncNet."""
    if stage == 2:
        return models
    return TrainModels(unet=models.unet, vae=models.vae, vgg=models.vgg)


def fixed_batch(samples: int, frames: int, dim: int) -> dict[str, np.ndarray]:
    """The astronaut's face (targets) and its mirror (references), random prompts and mel: (B, T, ...)."""
    rng = np.random.default_rng(0)
    face = np.ascontiguousarray(astronaut()[:256, 128:384])  # (256, 256, 3) uint8
    return {
        "targets": np.broadcast_to(face, (samples, frames, *face.shape)).copy(),
        "references": np.broadcast_to(face[:, ::-1], (samples, frames, *face.shape)).copy(),
        "prompts": rng.normal(size=(samples, frames, 50, dim)).astype(np.float32),
        "mouths": np.tile(np.array([70, 150, 190, 230], np.int32), (samples, frames, 1)),
        "mel": rng.normal(size=(samples, 80, 64)).astype(np.float32),
    }


class Memory:
    """Peak memory of a span of work on one device, and its growth over what was held before it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._trim = ctypes.CDLL("libc.so.6").malloc_trim if not self.cuda else None

    def release(self) -> None:
        """Hand freed memory back (the caching allocator's, glibc's), so the next baseline is what is held."""
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
        else:
            self._trim(0)

    def start(self) -> float:
        """Reset the peak; returns the bytes held now."""
        self.release()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            return float(torch.cuda.memory_allocated(self.device))
        with open("/proc/self/clear_refs", "w") as handle:  # Linux >= 4.0: VmHWM := VmRSS
            handle.write("5")
        return self._status("VmRSS")

    def now(self) -> float:
        """Bytes held now, after freed memory is handed back."""
        self.release()
        return float(torch.cuda.memory_allocated(self.device)) if self.cuda else self._status("VmRSS")

    def peak(self) -> float:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return float(torch.cuda.max_memory_allocated(self.device))
        return self._status("VmHWM")

    @staticmethod
    def _status(field: str) -> float:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return float(line.split()[1]) * 1024  # kB
        raise RuntimeError(f"/proc/self/status has no {field}")


def timed(fn: Callable[..., Any], device: torch.device, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def optimiser_cost(unet: torch.nn.Module, memory: Memory) -> list[dict[str, Any]]:
    """AdamW's second step (states exist) on the UNet's parameters with random gradients: time and transient bytes."""
    params = list(unet.parameters())
    rows = []
    for kind in ("foreach", "fused"):
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        optimiser = torch.optim.AdamW(params, lr=1e-12, **{kind: True})
        optimiser.step()
        held = memory.start()
        _, seconds = timed(optimiser.step, memory.device)
        rows.append({"optimizer": f"AdamW {kind}", "seconds": seconds, "transient_mib": (memory.peak() - held) / MIB})
        del optimiser
        for p in params:
            p.grad = None
    memory.release()
    return rows


def live_after_forward(trainer: TrainStep, batch: dict[str, np.ndarray], memory: Memory) -> float:
    """Bytes the generator's forward pass (and its losses) leaves alive for the backward pass: activations,
    checkpointed blocks' inputs, bf16 copies of weights. Unlike the step's peak, not hidden by the gradients that
    the backward pass allocates as it frees activations (at a batch of 1 or 2 they outweigh them)."""
    held = memory.now()
    with trainer.autocast():
        losses, *_ = trainer.generator_losses(batch, trainer.gan_on(0))
    live = memory.now() - held
    del losses
    return live


def run_config(
    models: TrainModels, stage: int, samples: int, precision: str, checkpointing: bool, steps: int, memory: Memory
) -> dict[str, Any]:
    config = TrainConfig(
        stage=stage,
        dataset="unused",
        output="unused",
        batch_size=samples,
        grad_accum=1,
        precision=precision,
        activation_checkpointing=checkpointing,
        gan_start=0,
    )
    frames = config.frames_per_sample
    batch = fixed_batch(samples, frames, models.unet.audio_dim)
    held = memory.start()
    trainer = TrainStep(stage_models(models, stage), config, memory.device)
    try:
        losses, first = timed(trainer, memory.device, [batch], 0)
        times = []
        for i in range(steps):
            losses, seconds = timed(trainer, memory.device, [batch], i + 1)
            times.append(seconds)
        peak = memory.peak()
        for p in models.unet.parameters():
            p.grad = None
        live = live_after_forward(trainer, batch, memory)
    finally:
        del trainer
        for p in models.unet.parameters():
            p.grad = None
    seconds = float(np.median(times)) if times else first
    return {
        "stage": stage,
        "samples": samples,
        "frames": samples * frames,
        "precision": precision,
        "checkpointing": checkpointing,
        "first_step_s": first,
        "step_s": seconds,
        "steps_per_s": 1 / seconds,
        "frames_per_s": samples * frames / seconds,
        "peak_mib": peak / MIB,
        "held_before_mib": held / MIB,
        "growth_mib": (peak - held) / MIB,
        "live_after_forward_mib": live / MIB,
        "losses_finite": bool(np.isfinite(list(losses.values())).all()),
        "total_loss": losses["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--stage1-batches", default="32", help="comma list of stage-1 batch sizes (frames)")
    parser.add_argument("--stage2-samples", type=int, default=2, help="stage-2 samples of 16 frames; 0 skips stage 2")
    parser.add_argument("--precision", default="bf16,fp32", help="comma list of fp32 / bf16")
    parser.add_argument(
        "--checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only with (--checkpointing) or only without (--no-checkpointing); both when not given",
    )
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the warm-up step")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-optimizer", action="store_true", help="skip the AdamW foreach/fused line")
    parser.add_argument("--json", help="append one JSON object per figure to this file")
    args = parser.parse_args()
    precisions = [p for p in args.precision.split(",") if p]
    if unknown := set(precisions) - {"fp32", "bf16"}:
        parser.error(f"--precision: unknown {sorted(unknown)}; use fp32 and/or bf16")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    memory = Memory(device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()}"
    header = {"bench": "train_step", "device": name, "size": args.size, "torch": torch.__version__}
    sink = open(args.json, "a") if args.json else nullcontext()  # noqa: SIM115 - closed by the with below
    with sink as out:

        def record(kind: str, **fields: Any) -> None:
            if out is not None:
                out.write(json.dumps({"kind": kind, **header, **fields}) + "\n")
                out.flush()

        print(
            f"device={name} size={args.size} torch={torch.__version__} load(1 min)={os.getloadavg()[0]:.2f}"
            + (f" tf32(cudnn)={torch.backends.cudnn.allow_tf32}" if cuda else "")
        )
        torch.manual_seed(0)
        start = time.perf_counter()
        models = random_models(args.size, device)
        weights = sum(p.numel() * p.element_size() for m in vars(models).values() for p in m.parameters())
        unet_params = sum(p.numel() for p in models.unet.parameters())
        unet_bytes = 4 * unet_params
        print(
            f"built in {time.perf_counter() - start:.1f} s; weights of every model {weights / GIB:.2f} GiB; "
            f"UNet {unet_params / 1e6:.2f} M parameters: fp32 weights + gradients + AdamW's two moments "
            f"= 4 x {unet_bytes / GIB:.2f} = {4 * unet_bytes / GIB:.2f} GiB"
        )
        record("models", weights_gib=weights / GIB, unet_params=unet_params, unet_state_gib=4 * unet_bytes / GIB)

        if not args.no_optimizer:
            for row in optimiser_cost(models.unet, memory):
                print(
                    f"{row['optimizer']:13s} step on the UNet: {row['seconds']:7.3f} s, "
                    f"{row['transient_mib']:8.0f} MiB beyond weights, gradients and states"
                )
                record("optimizer", **row)

        runs = [(1, b) for b in (int(b) for b in args.stage1_batches.split(",") if b)]
        runs += [(2, args.stage2_samples)] if args.stage2_samples > 0 else []
        settings = [(p, c) for p, c in ORDER if p in precisions and args.checkpointing in (None, c)]
        for precision, checkpointing in settings:
            for stage, samples in runs:
                label = (
                    f"stage {stage} {samples:2d} x {1 if stage == 1 else SYNC_FRAMES:2d} frames "
                    f"{precision} checkpointing={'on ' if checkpointing else 'off'}"
                )
                try:
                    row = run_config(models, stage, samples, precision, checkpointing, args.steps, memory)
                except torch.cuda.OutOfMemoryError:
                    memory.release()
                    print(f"{label}  OOM")
                    oom = {"stage": stage, "samples": samples, "precision": precision, "checkpointing": checkpointing}
                    record("train_step", oom=True, **oom)
                    continue
                print(
                    f"{label}  {row['steps_per_s']:7.3f} steps/s {row['frames_per_s']:7.2f} frames/s "
                    f"(first step {row['first_step_s']:.1f} s)  peak {row['peak_mib']:8.0f} MiB, "
                    f"+{row['growth_mib']:7.0f} over the {row['held_before_mib']:.0f} held before; "
                    f"{row['live_after_forward_mib']:7.0f} MiB alive after the forward pass"
                    f"  loss {row['total_loss']:.4f}"
                )
                record("train_step", **row)
        print(f"load(1 min)={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
