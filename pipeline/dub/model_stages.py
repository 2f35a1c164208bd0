"""Model stages of a segment: whisper prompts, then the fused generator on the frames with a face.

Row keys read and added:
- AudioPromptStage: audio, fps, start, stop, status (n,), rest (n,) -> prompts (k, 50, D) float32 for
  OK frames; where the dub audio rests, the prompt of silence (the mouth at rest)
- GenerateStage: crops (k, 256, 256, 3), prompts -> generated (k, 256, 256, 3) uint8; crops and
  prompts are dropped so only the result travels on
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from musedub.models.weights.store import ModelStore, resolve_device, resolve_dtype
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.dub.options import DubOptions, job_options
from musedub.pipeline.face.crop_geometry import FaceStatus
from musedub.pipeline.media.audio_decode import decode_audio_16k_mono
from musedub.pipeline.media.frame_rate import parse_fps

log = logging.getLogger(__name__)
GPU_BATCH, CPU_BATCH = 64, 8  # defaults: an H200's bf16 frames/s level off at 64 (docs/PERFORMANCE.md)


@dataclass
class AudioPromptStage:
    weights: str
    device: str = "cpu"
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    _prompter: AudioPrompter | None = field(default=None, init=False, repr=False)
    _audio: tuple[str, np.ndarray] | None = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        self._prompter = AudioPrompter(ModelStore(self.weights).load_audio_encoder(self.device))

    def _samples(self, uri: str, planned: str | None) -> np.ndarray:
        """The dub audio at 16 kHz, decoded once per job on this worker (segments come in order)."""
        if self._audio is None or self._audio[0] != uri:
            self._audio = (uri, decode_audio_16k_mono(uri, "dub audio", planned))
        return self._audio[1]

    def __call__(self, row: Row) -> Row:
        assert self._prompter is not None, "setup() first"
        samples = self._samples(row["audio"], row.get("audio_identity"))
        fps = parse_fps(row["fps"])
        # the job key hashes the audio's checksum: windows are reused across the job's segments only
        prompts = self._prompter.for_waveform(samples, fps, row["start"], row["stop"], row["job_key"])
        rest = np.asarray(row["rest"], bool)
        if rest.any():
            prompts[rest] = self._prompter.silence(fps)
        return {**row, "prompts": prompts[row["status"] == FaceStatus.OK]}


@dataclass
class GenerateStage:
    """The fused generator over a segment's face crops, `batch_size` at a time.

    A batch that runs out of GPU memory halves itself and is retried (with a warning); the size
    that fitted is kept for the rest of this worker's segments. With `compile`, every batch is
    padded to the full batch size (repeating its last crop), so one compiled graph serves all.
    """

    weights: str
    options: DubOptions
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    _generator: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _fits: int = field(default=0, init=False, repr=False)  # the largest batch known to fit; 0: not yet limited

    def __post_init__(self) -> None:
        if self.device == "cuda" and not self.resources.gpus:  # one GPU per actor unless declared otherwise
            self.resources = replace(self.resources, gpus=1.0)

    def setup(self) -> None:
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        generator = ModelStore(self.weights).load_generator(self.options.version, str(device), dtype)
        if self.compile:
            generator.compile_static()
        self._generator = generator
        log.info("generator on %s in %s%s", device, str(dtype).removeprefix("torch."), ", compiled" * self.compile)

    def __call__(self, row: Row) -> Row:
        assert self._generator is not None, "setup() first"
        device = next(self._generator.parameters()).device
        # the segment crosses to the device once each way: no copy (and no wait) per batch
        crops = torch.from_numpy(row["crops"]).to(device)  # (n, 256, 256, 3) uint8
        prompts = torch.from_numpy(row["prompts"]).to(device)  # (n, 50, D)
        parts: list[torch.Tensor] = []
        size = self._fits or job_options(row).batch_size or (GPU_BATCH if device.type == "cuda" else CPU_BATCH)
        i = 0
        while i < len(crops):
            count = min(size, len(crops) - i)
            batch = self._padded(crops[i : i + count], size)  # (B, 256, 256, 3)
            audio = self._padded(prompts[i : i + count], size)  # (B, 50, D)
            try:
                # at inference the reference image is the target frame itself
                generated = self._generator(batch, batch, audio)[:count]
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                generated = None
            if generated is None:  # outside the handler, so the failed batch's tensors are freed by now
                del batch, audio
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning(
                    "generator: a batch of %d frames ran out of memory on %s; retrying with %d", size, device, size // 2
                )
                size = self._fits = size // 2
                continue
            parts.append(generated)
            i += count
        out = torch.cat(parts).cpu().numpy() if parts else np.empty_like(row["crops"])
        rest = {k: v for k, v in row.items() if k not in ("crops", "prompts")}
        return {**rest, "generated": out}

    def _padded(self, part: torch.Tensor, size: int) -> torch.Tensor:
        """`part` (n, ...) grown to (size, ...) by repeating its last row when compiled; else as is."""
        if not self.compile or len(part) == size:
            return part
        return torch.cat([part, part[-1:].expand(size - len(part), *part.shape[1:])])
