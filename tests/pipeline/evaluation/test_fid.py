"""FID features of either network, read from a weights folder as `musedub eval` reads them."""

from __future__ import annotations

import numpy as np

from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.evaluation.fid import FidFeatures


def test_either_network_gives_one_feature_vector_per_crop(training_weights: WeightsLayout) -> None:
    crops = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    inception = FidFeatures("inception", training_weights)(crops)
    assert inception.shape == (3, 128) and inception.dtype == np.float32  # tiny: 2048 / 16
    assert not np.allclose(inception[0], inception[1])
    assert FidFeatures("vgg", training_weights)(crops).shape == (3, 16)  # tiny VGG19's relu5_1 width
