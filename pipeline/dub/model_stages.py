"""Model stages of a segment: whisper prompts, then the fused generator on the frames with a face.

Row keys read and added:
- AudioPromptStage: audio, fps, start, stop, status (n,), rest (n,) -> prompts (k, 50, D) float32 for
  OK frames; where the dub audio rests, the prompt of silence (the mouth at rest)
- GenerateStage: crops (k, 256, 256, 3), prompts, dubbed (n,) track ids, style_reference (the job's
  reference file, style only) -> generated (k, 256, 256, 3) uint8; crops and prompts are dropped so
  only the result travels on. It is thread-safe: a GPU worker runs several segments at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from musedub.models.weights.store import ModelStore, resolve_device, resolve_dtype
from musedub.pipeline.audio.prompts import AudioPrompter
from musedub.pipeline.core.stage import Resources, Row
from musedub.pipeline.dub.options import DubOptions, job_options
from musedub.pipeline.face.crop_geometry import FaceStatus
from musedub.pipeline.generators.base import FaceGenerator, SegmentInputs
from musedub.pipeline.generators.batching import BatchStats, FrameBatcher
from musedub.pipeline.generators.load import load_face_generator
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


def to_device(array: np.ndarray, device: torch.device, copies: torch.cuda.Stream | None) -> torch.Tensor:
    """A host array on `device`. To a GPU from pinned memory on the `copies` stream, so the copy runs
    while the batch already queued computes; the batches queued after it wait for it, and this
    thread goes on without waiting."""
    tensor = torch.from_numpy(array)
    if copies is None:
        return tensor.to(device)
    pinned = tensor.pin_memory()
    with torch.cuda.stream(copies):
        out = pinned.to(device, non_blocking=True)
    compute = torch.cuda.current_stream(device)
    compute.wait_stream(copies)
    out.record_stream(compute)  # its memory is not reused while the compute stream may still read it
    return out


@dataclass
class GenerateStage:
    """A generator plug-in (pipeline/generators) over segments' face crops, in batches of `batch_size`.

    Each job's rows name their generator; one is loaded per worker the first time a row asks for
    it (`setup()` loads the batch-wide one, so missing weights fail before any segment runs).
    With `segments` > 1 the worker takes that many segments at once (one thread each) and fills
    every batch from all of them (`FrameBatcher`): a part-filled batch waits at most `batch_wait`
    seconds for more. Every batch is padded to the full size, so a frame's bits do not depend on
    which segments shared its batch; a batch that runs out of GPU memory halves itself.
    """

    weights: str
    options: DubOptions
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    segments: int = 1
    batch_wait: float = 0.5
    resources: Resources = field(default_factory=lambda: Resources(cpus=1.0))
    _generators: dict[str, FaceGenerator] = field(default_factory=dict, init=False, repr=False)
    _batcher: FrameBatcher | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _copies: torch.cuda.Stream | None = field(default=None, init=False, repr=False)  # host-to-GPU copies

    def __post_init__(self) -> None:
        if self.device == "cuda" and not self.resources.gpus:  # one GPU per actor unless declared otherwise
            self.resources = replace(self.resources, gpus=1.0)
        if self.segments > 1:
            self.resources = replace(self.resources, calls=self.segments)

    def setup(self) -> None:
        self._generator(self.options)

    @property
    def batches(self) -> BatchStats:
        """What this worker's batches held so far."""
        return self._batcher.stats if self._batcher else BatchStats()

    @property
    def fits(self) -> int:
        """The largest batch known to fit on the device (0: none ran out of memory yet)."""
        return self._batcher.fits if self._batcher else 0

    def _generator(self, options: DubOptions) -> FaceGenerator:
        if options.generator not in self._generators:
            device = resolve_device(self.device)
            dtype = resolve_dtype(self.dtype, device)
            generator = load_face_generator(options.generator, self.weights, options.version, str(device), dtype)
            if self.compile:
                generator.compile_static()
            self._generators[options.generator] = generator
            log.info(
                "generator %s on %s in %s%s",
                options.generator,
                device,
                str(dtype).removeprefix("torch."),
                ", compiled" * self.compile,
            )
        return self._generators[options.generator]

    def __call__(self, row: Row) -> Row:
        options = job_options(row)
        ok = np.asarray(row["status"]) == FaceStatus.OK
        rest = {k: v for k, v in row.items() if k not in ("crops", "prompts")}
        if not ok.any():
            return {**rest, "generated": np.empty_like(row["crops"])}
        with self._lock:  # loading a model and preparing a segment (style: its caches) run one at a time
            generator = self._generator(options)
            device = generator.device
            self._batcher = self._batcher or FrameBatcher(device, self.segments, self.batch_wait)
            if device.type == "cuda" and self._copies is None:
                self._copies = torch.cuda.Stream(device)
            # the segment crosses to the device once each way: no copy (and no wait) per batch
            segment = generator.segment(
                SegmentInputs(
                    crops=to_device(row["crops"], device, self._copies),  # (k, 256, 256, 3) uint8
                    prompts=to_device(row["prompts"], device, self._copies),  # (k, 50, D)
                    seed_key=row["content_key"],
                    frames=np.arange(row["start"], row["stop"])[ok],
                    tracks=np.asarray(row["dubbed"], np.int32)[ok],
                    style_reference=row.get("style_reference", ""),
                    style_steps=options.style_steps,
                )
            )
        size = options.batch_size or (GPU_BATCH if device.type == "cuda" else CPU_BATCH)
        generated = self._batcher.generate(segment, int(ok.sum()), size)
        return {**rest, "generated": generated.cpu().numpy()}
