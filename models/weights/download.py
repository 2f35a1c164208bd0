"""Fetch the real MuseTalk release into the published layout (needs network access).

Hub files come through huggingface_hub; the face models face-alignment and the BiSeNet parser
use are plain URLs published by their authors.
"""

from __future__ import annotations

import logging
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from musedub.infra.errors import ConfigError
from musedub.models.inception import INCEPTION_FILE, INCEPTION_URL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubFile:
    repo: str
    filename: str
    folder: str  # destination folder under the weights root


@dataclass(frozen=True)
class UrlFile:
    url: str
    path: str  # destination path under the weights root


HUB_FILES: tuple[HubFile, ...] = (
    HubFile("TMElyralab/MuseTalk", "musetalkV15/musetalk.json", "."),
    HubFile("TMElyralab/MuseTalk", "musetalkV15/unet.pth", "."),
    HubFile("stabilityai/sd-vae-ft-mse", "config.json", "sd-vae"),
    HubFile("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors", "sd-vae"),
    HubFile("openai/whisper-tiny", "config.json", "whisper"),
    HubFile("openai/whisper-tiny", "pytorch_model.bin", "whisper"),
    HubFile("openai/whisper-tiny", "preprocessor_config.json", "whisper"),
)
V10_FILES: tuple[HubFile, ...] = (
    HubFile("TMElyralab/MuseTalk", "musetalk/musetalk.json", "."),
    HubFile("TMElyralab/MuseTalk", "musetalk/pytorch_model.bin", "."),
)
URL_FILES: tuple[UrlFile, ...] = (
    UrlFile(
        "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth", "face-alignment/s3fd-619a316812.pth"
    ),
    UrlFile(
        "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
        "face-alignment/2DFAN4-11f355bf06.pth.tar",
    ),
    UrlFile("https://download.pytorch.org/models/resnet18-5c106cde.pth", "face-parse-bisent/resnet18-5c106cde.pth"),
    # torchvision's ImageNet VGG19 (548 MB): the perceptual loss of training only
    UrlFile("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19/vgg19-dcbb9e9d.pth"),
    # pytorch-fid's port of TF's Inception-v3 (23.9 M parameters): the FID network of `musedub eval`
    UrlFile(INCEPTION_URL, f"inception/{INCEPTION_FILE}"),
)
# Published on Google Drive by the face-parsing.PyTorch author; no stable direct URL exists.
MANUAL_FILES: dict[str, str] = {
    "face-parse-bisent/79999_iter.pth": "the BiSeNet face-parsing weights of zllrunning/face-parsing.PyTorch",
}


def download_release(root: Path, with_v10: bool = False) -> list[str]:
    """Download every file of the layout into `root`; returns the files left to fetch by hand.

    A folder this call created is removed again when a download fails, so nothing half-made stays.
    """
    created = not root.exists()
    try:
        _download_all(root, with_v10)
    except ConfigError:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return [f"{path} ({what})" for path, what in MANUAL_FILES.items() if not (root / path).is_file()]


def _download_all(root: Path, with_v10: bool) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    root.mkdir(parents=True, exist_ok=True)
    for item in HUB_FILES + (V10_FILES if with_v10 else ()):
        log.info("hub %s: %s", item.repo, item.filename)
        try:
            hf_hub_download(item.repo, item.filename, local_dir=root / item.folder)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            raise ConfigError(
                f"cannot fetch {item.filename} from {item.repo} ({type(exc).__name__}): "
                "this needs access to the model hub (check network, HF_ENDPOINT, HF_HUB_OFFLINE)"
            ) from None
    for item in URL_FILES:
        target = root / item.path
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        log.info("url %s", item.url)
        try:
            with urllib.request.urlopen(item.url, timeout=60) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ConfigError(f"cannot fetch {item.url} ({type(exc).__name__}): check network access") from None
        partial.rename(target)
