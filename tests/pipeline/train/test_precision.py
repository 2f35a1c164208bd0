"""bf16 autocast and activation checkpointing in the MuseTalk training step (tiny models, CPU), and their settings."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from musedub.infra.errors import ConfigError
from musedub.infra.sample_media import face_frame
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.face.crop_geometry import Box, crop_face
from musedub.pipeline.train.config import TrainConfig, load_config
from musedub.pipeline.train.loop import build_models
from musedub.pipeline.train.step import TrainStep, autocast_dtype

CPU = torch.device("cpu")
FACE = Box(100, 40, 220, 180)  # the astronaut's face in a 320x240 frame
# stage 2 with both discriminators from step 0; one frame a sample and no sync loss keep it fast
STAGE2 = {"stage": 2, "gan_start": 0, "discriminator_width": 8, "sync": 0.0, "frames_per_sample": 1}


def settings(weights: WeightsLayout, **fields: object) -> TrainConfig:
    return TrainConfig(dataset="unused", output="unused", weights=str(weights.root), grad_accum=1, **fields)


def face_batch(samples: int, frames: int, dim: int) -> dict[str, np.ndarray]:
    """Crops of the moving astronaut (targets at t, references 0.5 s later) and fixed random prompts."""
    rng = np.random.default_rng(0)
    times = np.arange(samples * frames).reshape(samples, frames) / 25
    return {
        "targets": np.stack([[crop_face(face_frame(t), FACE) for t in row] for row in times]),  # (B, T, 256, 256, 3)
        "references": np.stack([[crop_face(face_frame(t + 0.5), FACE) for t in row] for row in times]),
        "prompts": rng.normal(size=(samples, frames, 50, dim)).astype(np.float32),
        "mouths": np.tile(np.array([70, 150, 190, 230], np.int32), (samples, frames, 1)),
        "mel": rng.normal(size=(samples, 80, 64)).astype(np.float32),
    }


def kept_for_backward(step: TrainStep, batch: dict[str, np.ndarray]) -> int:
    """Bytes of the distinct activation storages the generator's forward pass keeps for backward (weights
    excluded). All stay alive while its losses are, so no two share an address."""
    models = step.models
    weights = {
        t.untyped_storage().data_ptr()
        for m in (models.unet, models.vae, models.vgg, models.face_d, models.mouth_d)
        if m is not None
        for t in (*m.parameters(), *m.buffers())
    }
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), step.autocast():
        losses, *_ = step.generator_losses(batch, gan=True)
    assert losses["total"].requires_grad
    return sum(kept.values())


def test_checkpointing_changes_memory_not_gradients(training_weights: WeightsLayout, one_thread: None) -> None:
    """One stage-2 step (UNet, VAE decoder, VGG, both discriminators) with and without checkpointing."""
    torch.manual_seed(0)
    base = build_models(settings(training_weights, **STAGE2, batch_size=1), CPU)
    batch = face_batch(1, 1, base.unet.audio_dim)
    runs = {}
    for on in (False, True):
        models = copy.deepcopy(base)
        step = TrainStep(models, settings(training_weights, **STAGE2, batch_size=1, activation_checkpointing=on), CPU)
        losses = step([batch], 0)
        grads = {
            f"{name}.{key}": p.grad
            for name in ("unet", "face_d", "mouth_d")
            for key, p in getattr(models, name).named_parameters()
        }
        runs[on] = losses, grads, kept_for_backward(step, batch)
    (plain_losses, plain_grads, plain_saved), (losses, grads, saved) = runs[False], runs[True]
    assert losses == pytest.approx(plain_losses, rel=1e-6)
    assert {"gan_face", "gan_mouth", "discriminator"} <= set(losses)
    assert all(g is not None for g in plain_grads.values())
    for name, g in grads.items():
        torch.testing.assert_close(g, plain_grads[name], rtol=1e-5, atol=1e-9, msg=lambda m, name=name: f"{name}: {m}")
    # measured: 93 MB kept without checkpointing, 21 MB with, 38 MB if VGG19's were not checkpointed
    assert saved < 0.3 * plain_saved, (saved, plain_saved)


def test_bf16_step_stays_near_fp32(training_weights: WeightsLayout, one_thread: None) -> None:
    """bf16 keeps 8 significant bits (each rounding moves a value by at most 2^-9 = 0.2%). The losses are means
    of ~10^5 pixel and feature terms whose rounding errors mostly cancel (measured: 0.03% off fp32 here), so 1%
    holds for a correct step and fails for a cast that changes what is computed."""
    torch.manual_seed(0)
    base = build_models(settings(training_weights, stage=1, batch_size=2), CPU)
    batch = face_batch(2, 1, base.unet.audio_dim)
    runs = {}
    for precision in ("fp32", "bf16"):
        models = copy.deepcopy(base)
        step = TrainStep(models, settings(training_weights, stage=1, batch_size=2, precision=precision), CPU)
        outputs: list[torch.dtype] = []
        models.unet.register_forward_hook(lambda _m, _i, out, seen=outputs: seen.append(out.dtype))
        runs[precision] = step([batch], 0)
        assert outputs == [torch.float32 if precision == "fp32" else torch.bfloat16]
        # weights, gradients and AdamW moments stay fp32: bf16 is only how the forward pass computes
        for p in models.unet.parameters():
            assert p.dtype == p.grad.dtype == step.generator_opt.state[p]["exp_avg_sq"].dtype == torch.float32
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert all(np.isfinite(v) for v in bf16.values())
    assert bf16["total"] != fp32["total"]  # autocast did act
    for name in ("l1", "perceptual", "total"):
        assert bf16[name] == pytest.approx(fp32[name], rel=0.01), name


def test_precision_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stage1.yaml"
    base = "stage: 1\ndataset: d\noutput: o\n"
    path.write_text(base)
    config = load_config(str(path), TrainConfig)
    assert (config.precision, config.activation_checkpointing) == ("auto", False)
    for line, field in (("precision: fp16", "precision"), ("activation_checkpointing: sometimes", "activation_")):
        path.write_text(base + line + "\n")
        with pytest.raises(ConfigError, match=f"stage1.yaml: {field}") as error:
            load_config(str(path), TrainConfig)
        assert "\n" not in str(error.value)

    cuda = torch.device("cuda", 0)
    assert autocast_dtype("auto", CPU) is None  # CPU autocast runs bf16, but auto keeps fp32 off GPUs
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    assert autocast_dtype("fp32", cuda) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # e.g. a V100
    assert autocast_dtype("auto", cuda) is None
    with pytest.raises(ConfigError, match="bf16 needs a GPU with bf16 arithmetic"):
        autocast_dtype("bf16", cuda)
