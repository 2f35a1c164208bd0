"""The frozen whisper-tiny encoder: 30 s windows of 16 kHz audio -> every hidden state.

Only the encoder is built and loaded (the checkpoint's decoder weights are skipped), strictly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from musedub.infra.errors import ConfigError
from musedub.models.checkpoint import load_strict, read_state_dict
from musedub.models.constants import SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SAMPLES

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ENCODER_PREFIXES = ("model.encoder.", "encoder.")  # WhisperForConditionalGeneration / WhisperModel

# openai/whisper-tiny's encoder side; decoder fields keep their published values.
WHISPER_TINY_CONFIG: dict[str, Any] = {
    "d_model": 384,
    "encoder_layers": 4,
    "encoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_layers": 4,
    "decoder_attention_heads": 6,
    "decoder_ffn_dim": 1536,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "vocab_size": 51865,
}

# Test-sized: same window, frame rate and number of hidden states (5), narrower.
TINY_WHISPER_CONFIG: dict[str, Any] = {
    **WHISPER_TINY_CONFIG,
    "d_model": 64,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 128,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 128,
    "vocab_size": 64,
    "max_target_positions": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "decoder_start_token_id": 3,
    "suppress_tokens": [],
    "begin_suppress_tokens": [],
}


def encoder_state(full: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    """The encoder's own keys from a whole-model whisper checkpoint."""
    for prefix in ENCODER_PREFIXES:
        picked = {k[len(prefix) :]: v for k, v in full.items() if k.startswith(prefix)}
        if picked:
            return picked
    raise ConfigError(f"whisper weights {source} hold no encoder keys ({' or '.join(ENCODER_PREFIXES)}*)")


class WhisperAudioEncoder(nn.Module):
    """Per window: log-mel (80, 3000) -> the embeddings and every layer's output, (1500, L+1, D).

    The last state is the encoder output after its final LayerNorm, as transformers returns it.
    """

    def __init__(self, config: WhisperConfig, features: WhisperFeatureExtractor) -> None:
        super().__init__()
        self.encoder = WhisperEncoder(config)
        self.features = features
        self.dim = int(config.d_model)
        self.num_states = int(config.encoder_layers) + 1

    @classmethod
    def from_pretrained(cls, folder: Path) -> WhisperAudioEncoder:
        """Load an HF-format whisper folder (config.json, preprocessor_config.json, weights)."""
        for name in ("config.json", "preprocessor_config.json"):
            if not (folder / name).is_file():
                raise ConfigError(
                    f"whisper folder {folder} has no {name}: it must hold the openai/whisper-tiny release"
                )
        weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), folder / WEIGHT_FILES[-1])
        try:
            config = WhisperConfig.from_pretrained(str(folder), local_files_only=True)
            features = WhisperFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"whisper folder {folder} has an unreadable config ({str(exc)[:200]})") from None
        if config.max_source_positions != WINDOW_FRAMES or features.sampling_rate != SAMPLE_RATE:
            raise ConfigError(f"whisper folder {folder} is not a 16 kHz / 1500-frame whisper model")
        state = encoder_state(read_state_dict(weights), weights)
        with torch.device("meta"):
            model = cls(config, features)
        load_strict(model.encoder, state, source=str(weights), hint="use the config.json published with it")
        return model.eval().requires_grad_(False)

    @torch.inference_mode()
    def encode_windows(self, windows: Sequence[np.ndarray]) -> torch.Tensor:
        """Up to 30 s of float32 16 kHz mono per window -> (W, 1500, L+1, D) float32 on the CPU.

        Each window is padded to 30 s and normalised on its own, as whisper does, so a window's
        features depend only on its own samples.
        """
        for window in windows:
            if window.ndim != 1 or len(window) > WINDOW_SAMPLES:
                raise ValueError(f"a window is 1-D with at most {WINDOW_SAMPLES} samples, got {window.shape}")
        mel = self.features(
            [np.asarray(w, dtype=np.float32) for w in windows], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features  # (W, 80, 3000)
        param = next(self.encoder.parameters())
        states = self.encoder(mel.to(param.device, param.dtype), output_hidden_states=True).hidden_states
        return torch.stack(states, dim=2).float().cpu()  # (W, 1500, L+1, D)
