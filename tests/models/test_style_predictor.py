"""The style generator's lip-motion predictor: shapes, references of any count and length, strict
files, audio-aware style lookup, and learning a speaker's style from its reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from musedub.infra.errors import ConfigError, WeightsMismatchError
from musedub.models.style_predictor import (
    STYLE_PREDICTOR_CONFIG,
    TINY_STYLE_PREDICTOR_CONFIG,
    StylePredictor,
    mouth_motion,
    stack_references,
)

# tiny models on one thread: no faster on two, and far slower when other work shares the cores
pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG = TINY_STYLE_PREDICTOR_CONFIG
PROMPT = (50, CONFIG.audio_dim)


def prompts(*shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.randn(*shape, *PROMPT, generator=generator)


def test_full_size() -> None:
    with torch.device("meta"):
        model = StylePredictor(STYLE_PREDICTOR_CONFIG)
    assert sum(p.numel() for p in model.parameters()) == 5_219_373
    assert model.audio.project.weight.shape == (256, 10 * 384)  # 10 mixed whisper frames -> one vector


def test_mouth_motion_is_in_crop_box_units() -> None:
    landmarks = torch.zeros(2, 68, 2)
    landmarks[:, 48] = torch.tensor([110.0, 220.0])  # the box's top-left corner
    landmarks[:, 67] = torch.tensor([310.0, 620.0])  # its bottom-right corner
    boxes = torch.tensor([[110.0, 220.0, 310.0, 620.0]]).expand(2, 4)
    mouth = mouth_motion(landmarks, boxes)
    assert mouth.shape == (2, 20, 2)
    assert mouth[:, 0].tolist() == [[0.0, 0.0]] * 2 and mouth[:, 19].tolist() == [[1.0, 1.0]] * 2


def test_references_of_any_count_and_length_are_masked_out_where_padded() -> None:
    torch.manual_seed(0)
    model = StylePredictor(CONFIG).eval()
    short = [(prompts(5), torch.rand(5, 20, 2))]
    many = [(prompts(n), torch.rand(n, 20, 2)) for n in (3, 9, 7)]
    audio, lips, mask = stack_references([short, many])
    assert audio.shape == (2, 3, 9, *PROMPT) and lips.shape == (2, 3, 9, 20, 2)
    assert mask.sum(dim=(1, 2)).tolist() == [5, 19]
    driving = prompts(2, 12)
    with torch.no_grad():
        batched = model(driving, audio, lips, mask)
        alone = model(driving[:1], *stack_references([short]))
    assert batched.shape == (2, 12, 20, 2)
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)  # padding changes nothing
    with pytest.raises(ValueError, match="at least one real reference frame"):
        model(driving, audio, lips, torch.zeros_like(mask))


def test_files_round_trip_and_load_strictly(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = StylePredictor(CONFIG).eval()
    model.save_pretrained(tmp_path / "style")
    assert sorted(p.name for p in (tmp_path / "style").iterdir()) == ["predictor.json", "predictor.safetensors"]
    loaded = StylePredictor.from_pretrained(tmp_path / "style")
    inputs = (prompts(1, 4), *stack_references([[(prompts(6), torch.rand(6, 20, 2))]]))
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), model(*inputs))

    weights = tmp_path / "style" / "predictor.safetensors"
    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if k != "head.1.bias"}, str(weights))
    with pytest.raises(WeightsMismatchError, match=r"predictor\.safetensors .*1 missing key\(s\) \(head\.1\.bias\)"):
        StylePredictor.from_pretrained(tmp_path / "style")
    save_file({**state, "extra.weight": torch.zeros(1)}, str(weights))
    with pytest.raises(WeightsMismatchError, match=r"predictor\.safetensors .*1 unexpected key\(s\) \(extra\.weight\)"):
        StylePredictor.from_pretrained(tmp_path / "style")

    config = tmp_path / "style" / "predictor.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "depth": 3}))
    with pytest.raises(
        ConfigError, match=r"predictor\.json does not describe StylePredictorConfig \(unknown \['depth'\]"
    ):
        StylePredictor.from_pretrained(tmp_path / "style")
    with pytest.raises(ConfigError, match="init-random"):
        StylePredictor.from_pretrained(tmp_path / "absent")


def train(model: StylePredictor, batches, steps: int, lr: float) -> None:
    """Adam on MSE over `steps` batches drawn from `batches()`."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        driving, references, target = batches()
        loss = F.mse_loss(model(driving, *references), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def test_cross_attention_borrows_the_lips_the_reference_made_for_the_same_sound() -> None:
    """Trained briefly on a pure lookup task, then probed by swapping two sounds' lip shapes.

    Training, not hand-set weights: the claim is that this architecture *learns* to look lips up
    by sound. In each training sample four fixed sounds get fresh random lip shapes (from a
    3-mode shape space, as real mouths move in few modes), shown only in the reference, so
    nothing but the lookup predicts the target. The probe fails if queries did not come from the
    driving audio (sounds A and B would get the same prediction) or keys not from the reference
    audio (the swapped reference holds the same set of lip shapes).
    """
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    sounds = prompts(4, generator=generator)  # (4, 50, D)
    modes = torch.randn(3, 20, 2, generator=generator)

    def shapes(coefficients: torch.Tensor) -> torch.Tensor:
        """(..., 3) -> lips (..., 20, 2) around the box centre."""
        return 0.5 + torch.einsum("...m,mpc->...pc", coefficients, modes) / 3**0.5

    def lookup(driving_ids: torch.Tensor, reference_ids: torch.Tensor, lips: torch.Tensor):
        """ids (B, T) / (B, L) into `sounds`, lips (B, 4, 20, 2) per sound -> model inputs and target."""
        picked = torch.arange(len(lips))[:, None]
        mask = torch.ones(len(lips), 1, reference_ids.shape[1], dtype=torch.bool)
        references = (sounds[reference_ids][:, None], lips[picked, reference_ids][:, None], mask)
        return sounds[driving_ids], references, lips[picked, driving_ids]

    def batches():
        reference_ids = torch.stack([torch.randperm(4, generator=generator) for _ in range(16)])
        driving_ids = torch.randint(0, 4, (16, 4), generator=generator)
        return lookup(driving_ids, reference_ids, shapes(torch.randn(16, 4, 3, generator=generator)))

    model = StylePredictor(CONFIG)
    train(model, batches, steps=250, lr=3e-3)

    a, b = 0, 1
    first, second = shapes(torch.tensor([1.0, -1.0, 0.5])), shapes(torch.tensor([-1.0, 0.5, -1.0]))
    others = shapes(torch.randn(2, 3, generator=generator))
    driving, reference = torch.tensor([[a, b, a, b]]), torch.tensor([[2, a, 3, b]])
    with torch.no_grad():
        inputs, refs, _ = lookup(driving, reference, torch.stack([first, second, *others])[None])
        as_given = model(inputs, *refs)[0]  # (4, 20, 2)
        inputs, refs, _ = lookup(driving, reference, torch.stack([second, first, *others])[None])
        swapped = model(inputs, *refs)[0]

    apart = float((first - second).norm())

    def near(predicted: torch.Tensor, lips: torch.Tensor) -> bool:
        return bool(((predicted - lips).flatten(1).norm(dim=1) < 0.1 * apart).all())

    on_a, on_b = driving[0] == a, driving[0] == b
    assert near(as_given[on_a], first) and near(as_given[on_b], second)  # queries differ by driving sound
    assert near(swapped[on_a], second) and near(swapped[on_b], first)
    moved = (swapped[on_a] - as_given[on_a]).flatten(1)  # the change for sound A
    assert bool((moved @ (second - first).flatten() > 0.8 * apart**2).all())  # towards the lips A now has


def test_learns_the_audio_mapping_and_takes_the_speaker_style_from_the_reference() -> None:
    """Lips = a fixed function of the sound + a per-speaker offset that only the reference shows.

    8 speakers x 6 windows of 8 frames from 12 sounds. After 200 steps of 16 windows the loss is
    at least 50x under its start; references from another speaker raise it at least 8x, so the
    model takes the style from the reference.
    """
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)
    speakers, windows, frames = 8, 6, 8
    sounds = prompts(12, generator=generator)
    base = 0.5 + 0.1 * torch.randn(12, 20, 2, generator=generator)  # the lips each sound asks for
    offsets = 0.2 * torch.randn(speakers, 1, 20, 2, generator=generator)  # each speaker's style
    ids = torch.randint(0, 12, (speakers, windows, frames), generator=generator)
    audio, lips = sounds[ids], base[ids] + offsets[:, None]  # (S, W, T, 50, D), (S, W, T, 20, 2)

    def pick(speaker: torch.Tensor, window: torch.Tensor, reference_speaker: torch.Tensor):
        reference_window = (window + 1 + torch.randint(0, windows - 1, window.shape, generator=generator)) % windows
        mask = torch.ones(len(speaker), 1, frames, dtype=torch.bool)
        references = (
            audio[reference_speaker, reference_window][:, None],
            lips[reference_speaker, reference_window][:, None],
            mask,
        )
        return audio[speaker, window], references, lips[speaker, window]

    def batches():
        speaker = torch.randint(0, speakers, (16,), generator=generator)
        return pick(speaker, torch.randint(0, windows, (16,), generator=generator), speaker)

    everyone = torch.arange(speakers).repeat_interleave(windows)
    every_window = torch.arange(windows).repeat(speakers)

    def loss(reference_speaker: torch.Tensor) -> float:
        with torch.no_grad():
            driving, references, target = pick(everyone, every_window, reference_speaker)
            return float(F.mse_loss(model(driving, *references), target))

    model = StylePredictor(CONFIG).eval()
    before = loss(everyone)
    train(model, batches, steps=200, lr=3e-3)
    trained = loss(everyone)
    wrong_speaker = loss(
        (everyone + 1 + torch.randint(0, speakers - 1, everyone.shape, generator=generator)) % speakers
    )
    assert trained < before / 50  # measured: 287x
    assert wrong_speaker > 8 * trained  # measured: 44x
