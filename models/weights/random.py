"""Random weights in the published layout, so the whole pipeline runs offline.

They are labelled (RANDOM_WEIGHTS.txt, and a warning whenever loaded): they exercise every
code path and shape but do not lip-sync.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from musedub.models.audio_encoder import TINY_WHISPER_CONFIG, WHISPER_TINY_CONFIG
from musedub.models.face_parsing import BiSeNet
from musedub.models.inception import INCEPTION_CONFIG, TINY_INCEPTION_CONFIG, FIDInception
from musedub.models.style_predictor import STYLE_PREDICTOR_CONFIG, TINY_STYLE_PREDICTOR_CONFIG, StylePredictor
from musedub.models.style_renderer import STYLE_RENDERER_CONFIG, TINY_STYLE_RENDERER_CONFIG, StyleRenderer
from musedub.models.syncnet import SYNCNET_CONFIG, TINY_SYNCNET_CONFIG, SyncNet
from musedub.models.unet import MUSETALK_UNET_CONFIG, TINY_UNET_CONFIG, MuseTalkUNet
from musedub.models.vae import SD_VAE_CONFIG, TINY_VAE_CONFIG
from musedub.models.vgg19 import TINY_VGG19_WIDTHS, VGG19_WIDTHS, VGG19Features
from musedub.models.weights.layout import RANDOM_MARKER, UNET_DIRS, UNET_WEIGHT_NAMES, WeightsLayout


def write_random_weights(root: Path, tiny: bool, seed: int = 0, with_v10: bool = False) -> WeightsLayout:
    """Write musetalkV15/ (and musetalk/ for v1.0), sd-vae/ and whisper/ with random weights under `root`."""
    torch.manual_seed(seed)
    layout = WeightsLayout(root)
    root.mkdir(parents=True, exist_ok=True)
    unet = MuseTalkUNet(TINY_UNET_CONFIG if tiny else MUSETALK_UNET_CONFIG)
    for version in ("v1.5", "v1.0") if with_v10 else ("v1.5",):
        unet.save_pretrained(layout.unet_config(version), root / UNET_DIRS[version] / UNET_WEIGHT_NAMES[version][0])
    AutoencoderKL.from_config(TINY_VAE_CONFIG if tiny else SD_VAE_CONFIG).save_pretrained(layout.vae)
    config = WhisperConfig(**(TINY_WHISPER_CONFIG if tiny else WHISPER_TINY_CONFIG))
    whisper = WhisperForConditionalGeneration(config)
    layout.whisper.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(layout.whisper)
    # The published openai/whisper-tiny file: a torch pickle with `model.encoder.*` keys.
    torch.save({k: v.contiguous() for k, v in whisper.state_dict().items()}, layout.whisper / "pytorch_model.bin")
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(layout.whisper)
    write_random_style_models(layout, tiny, seed)
    size = "tiny test-sized" if tiny else "full-size"
    (root / RANDOM_MARKER).write_text(
        f"These are RANDOM {size} weights (seed {seed}) written by `musedub weights init-random`.\n"
        "They have the published file layout and exercise the pipeline; they do not lip-sync.\n"
        "Real weights: `musedub weights download DIR`.\n"
    )
    return layout


def write_random_style_models(layout: WeightsLayout, tiny: bool, seed: int = 0) -> None:
    """The style generator's predictor and renderer in style/, seeded on their own so the others stay as they were."""
    torch.manual_seed(seed)
    StylePredictor(TINY_STYLE_PREDICTOR_CONFIG if tiny else STYLE_PREDICTOR_CONFIG).save_pretrained(layout.style)
    StyleRenderer(TINY_STYLE_RENDERER_CONFIG if tiny else STYLE_RENDERER_CONFIG).save_pretrained(layout.style)


def write_random_training_models(layout: WeightsLayout, tiny: bool, seed: int = 0) -> None:
    """A random VGG19 trunk (in torchvision's key layout), SyncNet and FID Inception, for training and eval offline."""
    torch.manual_seed(seed)
    layout.vgg19.parent.mkdir(parents=True, exist_ok=True)
    vgg = VGG19Features(TINY_VGG19_WIDTHS if tiny else VGG19_WIDTHS)
    torch.save(vgg.state_dict(), layout.vgg19)
    SyncNet(TINY_SYNCNET_CONFIG if tiny else SYNCNET_CONFIG).save_pretrained(layout.syncnet)
    layout.inception.parent.mkdir(parents=True, exist_ok=True)
    torch.save(FIDInception.random(TINY_INCEPTION_CONFIG if tiny else INCEPTION_CONFIG).state_dict(), layout.inception)


def write_random_face_parser(layout: WeightsLayout, seed: int = 0) -> Path:
    """A random BiSeNet at `face-parse-bisent/79999_iter.pth`, saved as the published file is."""
    torch.manual_seed(seed)
    layout.face_parsing.mkdir(parents=True, exist_ok=True)
    torch.save(BiSeNet().state_dict(), layout.face_parser)
    return layout.face_parser
