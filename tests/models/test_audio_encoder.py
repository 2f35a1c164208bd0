"""The whisper encoder: strict loading of the published file, every hidden state, window independence."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from musedub.infra.errors import ConfigError, WeightsMismatchError
from musedub.models.audio_encoder import WHISPER_TINY_CONFIG, WhisperAudioEncoder
from musedub.models.weights.layout import WeightsLayout


def test_full_size_encoder_is_whisper_tiny() -> None:
    with torch.device("meta"):
        encoder = WhisperEncoder(WhisperConfig(**WHISPER_TINY_CONFIG))
    assert encoder.config.d_model == 384 and len(encoder.layers) == 4
    assert tuple(encoder.state_dict()["embed_positions.weight"].shape) == (1500, 384)


def test_states_are_embeddings_layers_and_final_layernorm(
    audio_encoder: WhisperAudioEncoder, speech: np.ndarray
) -> None:
    stacked = audio_encoder.encode_windows([speech])
    assert stacked.shape == (1, 1500, 5, 64)
    mel = audio_encoder.features([speech], sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        out = audio_encoder.encoder(mel, output_hidden_states=True)
    assert torch.allclose(stacked[0, :, 4], out.last_hidden_state[0], atol=1e-6)  # after the final LayerNorm
    assert torch.allclose(stacked[0, :, 0], out.hidden_states[0][0], atol=1e-6)  # conv + positions


def test_windows_are_independent_of_their_batch(audio_encoder: WhisperAudioEncoder, speech: np.ndarray) -> None:
    alone = audio_encoder.encode_windows([speech[:50_000]])
    batched = audio_encoder.encode_windows([speech, speech[:50_000]])
    assert torch.allclose(batched[1], alone[0], atol=1e-5)


def test_loads_the_encoder_from_a_whole_model_checkpoint(tiny_weights: WeightsLayout) -> None:
    state = torch.load(tiny_weights.whisper / "pytorch_model.bin", weights_only=True)
    assert any(k.startswith("model.decoder.") for k in state)  # the published file holds both halves
    encoder = WhisperAudioEncoder.from_pretrained(tiny_weights.whisper)
    assert torch.equal(encoder.encoder.conv1.weight, state["model.encoder.conv1.weight"])


def test_broken_whisper_folders_are_clear_errors(tmp_path: Path, tiny_weights: WeightsLayout) -> None:
    folder = tmp_path / "whisper"
    shutil.copytree(tiny_weights.whisper, folder)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ConfigError, match="no preprocessor_config.json"):
        WhisperAudioEncoder.from_pretrained(folder)
    shutil.copy(tiny_weights.whisper / "preprocessor_config.json", folder)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state.pop("model.encoder.layer_norm.weight")
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(WeightsMismatchError, match="missing key.*layer_norm.weight"):
        WhisperAudioEncoder.from_pretrained(folder)
    torch.save({k: v for k, v in state.items() if "encoder" not in k}, folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="no encoder keys"):
        WhisperAudioEncoder.from_pretrained(folder)
