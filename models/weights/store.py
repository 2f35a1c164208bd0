"""Weights resolved once per machine from a local folder or an fsspec URI, then loaded by role.

A remote weights URI is copied into a per-machine cache under a file lock, published by rename
when complete, and treated as immutable: publish new weights under a new prefix.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from musedub.infra.errors import ConfigError
from musedub.infra.storage import filesystem, is_local, local_path, validate_uri
from musedub.models.audio_encoder import WhisperAudioEncoder
from musedub.models.face_parsing import FaceParser
from musedub.models.generator import MuseTalkGenerator
from musedub.models.unet import MuseTalkUNet
from musedub.models.vae import CropAutoencoder
from musedub.models.weights.layout import UnetVersion, WeightsLayout

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = os.environ.get("MUSEDUB_WEIGHTS", "weights")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("auto", *DTYPES)  # what --dtype accepts
_WARNED_RANDOM: set[str] = set()  # warn once per process and location


def cache_root() -> Path:
    return Path(os.environ.get("MUSEDUB_CACHE", Path.home() / ".cache" / "musedub")) / "weights"


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; an explicit 'cuda' without a GPU is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but no CUDA GPU is visible: use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device: use auto, cpu or cuda[:N]") from None


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' is bf16 on a GPU (its tensor cores' fast path, and fp32's exponent range, so no
    overflow where fp16 could) and fp32 on a CPU, where bf16 is slower and the tests' bits live."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


class ModelStore:
    """One weights location (folder or URI); `layout` is its local copy."""

    def __init__(self, uri: str = DEFAULT_WEIGHTS) -> None:
        self.uri = validate_uri(uri, "weights location")
        self._layout: WeightsLayout | None = None

    @property
    def layout(self) -> WeightsLayout:
        if self._layout is None:
            root = local_path(self.uri) if is_local(self.uri) else self._fetch()
            self._layout = WeightsLayout(root)
            self._layout.check_root()
            if self._layout.is_random and self.uri not in _WARNED_RANDOM:
                _WARNED_RANDOM.add(self.uri)
                log.warning("weights at %s are RANDOM (made by init-random): output will not lip-sync", self.uri)
        return self._layout

    def _fetch(self) -> Path:
        """Copy the remote folder into the cache once; concurrent workers wait on the lock."""
        key = hashlib.sha256(self.uri.rstrip("/").encode()).hexdigest()[:24]
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        target = root / key
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if target.is_dir():
                return target
            fs, path = filesystem(self.uri)
            if not fs.exists(path):
                raise ConfigError(
                    f"weights location {self.uri} does not exist or is not readable: check the URI and access"
                )
            staging = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".partial", dir=root))
            try:
                log.info("copying weights from %s into %s", self.uri, target)
                fs.get(path.rstrip("/") + "/", str(staging), recursive=True)
                staging.rename(target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return target

    def load_unet(self, version: UnetVersion = "v1.5") -> MuseTalkUNet:
        self.layout.check(version)
        return MuseTalkUNet.from_pretrained(self.layout.unet_config(version), self.layout.unet_weights(version))

    def load_vae(self) -> CropAutoencoder:
        return CropAutoencoder.from_pretrained(self.layout.vae)

    def load_generator(
        self, version: UnetVersion = "v1.5", device: str = "auto", dtype: torch.dtype = torch.float32
    ) -> MuseTalkGenerator:
        """VAE + UNet on `device` in `dtype`, in eval mode, gradients off.

        The UNet loads first: its layout check covers every file, so a gap fails before any load.
        """
        unet = self.load_unet(version)
        generator = MuseTalkGenerator(self.load_vae(), unet)
        return generator.to(device=resolve_device(device), dtype=dtype).eval().requires_grad_(False)

    def load_audio_encoder(self, device: str = "auto") -> WhisperAudioEncoder:
        """Whisper stays float32: it runs once per 30 s of audio and its states feed every frame."""
        return WhisperAudioEncoder.from_pretrained(self.layout.whisper).to(resolve_device(device))

    def load_face_parser(self, device: str = "auto") -> FaceParser:
        """BiSeNet from `face-parse-bisent/79999_iter.pth` (its file carries the ResNet-18 too)."""
        return FaceParser.from_file(self.layout.face_parser, resolve_device(device))
