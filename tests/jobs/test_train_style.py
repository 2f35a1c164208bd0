"""`musedub train-style predictor` end to end on the local Ray cluster: a run of 2 steps checkpoints
style/ files that a weights folder loads strictly. Resuming is the loop MuseTalk's stages share
(`run_task`), killed and resumed in tests/jobs/test_train.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from musedub.jobs.cli import main
from musedub.models.style_predictor import TINY_STYLE_PREDICTOR_CONFIG, StylePredictor
from musedub.models.weights.layout import WeightsLayout


def test_a_predictor_that_cannot_read_the_dataset_s_features_fails_before_the_cluster(
    style_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "predictor.yaml"
    config.write_text(yaml.safe_dump({"dataset": str(style_dataset), "output": str(tmp_path / "runs")}))  # full size
    assert main(["train-style", "predictor", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("musedub: error: dataset") and "width 64 and the predictor reads 384" in err[-1]
    assert not (tmp_path / "runs").exists()
    assert main(["train-style", "lips", str(config)]) == 2  # not a model: a usage error


@pytest.mark.slow  # a Ray Train run on the shared cluster
def test_train_style_predictor_checkpoints_a_loadable_model(
    ray_cluster: str, style_dataset: Path, tiny_weights: WeightsLayout, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    settings = {
        "dataset": str(style_dataset),
        "output": str(tmp_path / "runs"),
        "size": "tiny",
        "frames": 16,
        "references": 2,
        "reference_frames": 8,
        "exclusion": 2,
        "min_face": 64,
        "batch_size": 2,
        "lr": 1e-3,
        "checkpoint_every": 2,
        "cpus_per_worker": 0.5,
        "samples_per_clip": 2,
        "log_every": 1,
    }
    config = tmp_path / "predictor.yaml"
    config.write_text(yaml.safe_dump({**settings, "steps": 2}))
    assert main(["train-style", "predictor", str(config), "--address", ray_cluster]) == 0
    printed = capsys.readouterr()
    assert "train-style predictor: 2/2 steps" in printed.err
    assert "step-00000002" in printed.out and "velocity" in printed.out

    last = tmp_path / "runs" / "style-predictor" / "step-00000002"
    state = torch.load(last / "train_state.pt", weights_only=True)
    assert state["step"] == 2 and state["starts"] == [0]
    trained = StylePredictor.from_pretrained(last / "style")  # strictly
    assert trained.config == TINY_STYLE_PREDICTOR_CONFIG

    weights = tmp_path / "weights"  # the trained predictor with the base's renderer, as dub loads them
    assert main(["weights", "compose", str(tiny_weights.root), str(last), str(weights)]) == 0
    loaded = StylePredictor.from_pretrained(WeightsLayout(weights).style)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in loaded.state_dict().items())
    renderer = WeightsLayout(weights).style / "renderer.safetensors"
    assert renderer.read_bytes() == (tiny_weights.style / "renderer.safetensors").read_bytes()
