"""Where each model's files sit in a weights folder: the layout of the published MuseTalk release."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from musedub.infra.errors import ConfigError

STYLE_FOLDER = "style"  # our style generator's models, beside the published ones

UnetVersion = Literal["v1.5", "v1.0"]

UNET_DIRS: dict[str, str] = {"v1.5": "musetalkV15", "v1.0": "musetalk"}
UNET_WEIGHT_NAMES: dict[str, tuple[str, ...]] = {
    "v1.5": ("unet.pth", "unet.safetensors"),
    "v1.0": ("pytorch_model.bin", "pytorch_model.safetensors"),
}
RANDOM_MARKER = "RANDOM_WEIGHTS.txt"


@dataclass(frozen=True)
class WeightsLayout:
    """Paths inside one local weights folder; nothing is read until a model asks."""

    root: Path

    def unet_config(self, version: UnetVersion) -> Path:
        return self.root / UNET_DIRS[version] / "musetalk.json"

    def unet_weights(self, version: UnetVersion) -> Path:
        folder = self.root / UNET_DIRS[version]
        names = UNET_WEIGHT_NAMES[version]
        return next((folder / n for n in names if (folder / n).is_file()), folder / names[0])

    @property
    def vae(self) -> Path:
        return self.root / "sd-vae"

    @property
    def whisper(self) -> Path:
        return self.root / "whisper"

    @property
    def face_alignment(self) -> Path:
        """S3FD detector + 2DFAN4 landmarks, the files face-alignment would otherwise download."""
        return self.root / "face-alignment"

    @property
    def face_parsing(self) -> Path:
        """BiSeNet `79999_iter.pth` and its `resnet18-5c106cde.pth` backbone."""
        return self.root / "face-parse-bisent"

    @property
    def face_parser(self) -> Path:
        return self.face_parsing / "79999_iter.pth"

    @property
    def vgg19(self) -> Path:
        """torchvision's ImageNet VGG19 (perceptual loss; training only)."""
        return self.root / "vgg19" / "vgg19-dcbb9e9d.pth"

    @property
    def inception(self) -> Path:
        """pytorch-fid's port of TF's 2015-12-05 Inception-v3, the network published FIDs use (eval)."""
        return self.root / "inception" / "pt_inception-2015-12-05-6726825d.pth"

    @property
    def syncnet(self) -> Path:
        """Our SyncNet folder, syncnet.pth + syncnet.json (stage-2 sync loss, LSE metrics)."""
        return self.root / "syncnet"

    @property
    def style(self) -> Path:
        """Our style generator: predictor.json + .safetensors, renderer.json + .safetensors (none published)."""
        return self.root / STYLE_FOLDER

    @property
    def is_random(self) -> bool:
        return (self.root / RANDOM_MARKER).is_file()

    def check_root(self) -> None:
        """Fail early, with the fix, when there is no weights folder at all."""
        if not self.root.is_dir():
            raise ConfigError(
                f"weights folder {self.root} does not exist: run `musedub weights download {self.root}` "
                f"(online) or `musedub weights init-random --tiny {self.root}` (offline, random weights)"
            )

    def check(self, version: UnetVersion) -> None:
        """Fail early, with the fix, when the folder lacks what generation needs."""
        self.check_root()
        needed = [
            self.unet_config(version),
            self.unet_weights(version),
            self.vae / "config.json",
            self.whisper / "config.json",
        ]
        missing = [str(p.relative_to(self.root)) for p in needed if not p.is_file()]
        if missing:
            raise ConfigError(
                f"weights folder {self.root} lacks {', '.join(missing)}: re-run `musedub weights download {self.root}`"
            )
