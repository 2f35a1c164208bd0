"""What a generator needs in the weights, checked at planning without loading (or downloading) them."""

from __future__ import annotations

from musedub.infra.errors import ConfigError
from musedub.infra.storage import exists, join_uri
from musedub.models.constants import PREDICTOR_NAME, RENDERER_NAME, GeneratorName
from musedub.models.weights.layout import STYLE_FOLDER


def require_generator_weights(name: GeneratorName, weights: str) -> None:
    """Fail at planning, in one line, when `weights` lack the generator's models: a style job should
    not run its tracking first and find out on the GPU. Remote weights are asked file by file."""
    if name != "style":
        return
    files = [f"{n}.{ext}" for n in (PREDICTOR_NAME, RENDERER_NAME) for ext in ("json", "safetensors")]
    missing = [f for f in files if not exists(join_uri(weights, f"{STYLE_FOLDER}/{f}"))]
    if missing:
        raise ConfigError(
            f"weights {weights} have no style generator ({', '.join(missing)} missing in {STYLE_FOLDER}/): none are "
            "published; train them with `musedub train-style`, or write random ones with `musedub weights init-random`"
        )
