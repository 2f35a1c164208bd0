"""A style job on weights without the style models fails at planning, in one line, before any
download of the weights: each file is asked for where the weights are."""

from __future__ import annotations

from pathlib import Path

import pytest

from musedub.infra.errors import ConfigError
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.generators.requirements import require_generator_weights


def test_style_needs_its_four_files_and_musetalk_nothing(tiny_weights: WeightsLayout, tmp_path: Path) -> None:
    require_generator_weights("style", str(tiny_weights.root))
    require_generator_weights("musetalk", str(tmp_path))
    (tmp_path / "style").mkdir()
    (tmp_path / "style" / "predictor.json").write_text("{}")
    with pytest.raises(ConfigError) as failed:
        require_generator_weights("style", str(tmp_path))
    message = str(failed.value)
    assert "predictor.safetensors, renderer.json, renderer.safetensors missing in style/" in message
    assert "\n" not in message and "musedub train-style" in message
