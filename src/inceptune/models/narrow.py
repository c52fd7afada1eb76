"""A small real network for the mechanics: a seeded, narrow Inception-v3 written as a weights file.

`write_narrow_weights(PATH)` writes an Inception-v3 of width 1/8 by default (keras.applications' layers,
block names `mixed0` ... `mixed10`, feature sources and saved-model structure; a sixtieth of the weights)
that `--weights PATH` takes like any weights file (models/backbone.py builds the width the file declares).
Exports, signals, servers, clusters and the recipe's code paths run on it in seconds. Its features are
not ImageNet's: random, but made useful by the initialisation below.

The initialisation: convolutions drawn from He's normal (variance 2 / fan-in), then each BatchNorm's
moving mean and variance set to what reaches it over generated pictures (data-dependent initialisation,
as in LSUV): every channel enters its ReLU centred and unit-scaled. Deep features of different photos then
do not collapse onto one direction (He's initialisation alone: mean cosine 0.99 between photos, so
near-duplicate search flags everything, and the float16 cache's rounding is amplified by the head's
standardisation), and near-duplicates, OOD scores and parity checks behave on them as on real features.
What they do not give is accuracy (a logistic regression on mixed10 separates hymenoptera's ants and bees
at 0.60, against 0.95 on the ImageNet weights): tests of what features are worth use the real network.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from inceptune.architectures.inception_v3 import inception_v3_base
from inceptune.models.backbone import save_backbone_weights

SIDE = 96  # the pictures the BatchNorm statistics are measured on: a size with 2x2 cells at mixed10
PICTURES = 48


def generated_pictures(count: int = PICTURES, side: int = SIDE, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields with a few coloured discs and some grain, in [-1, 1]: (count, side, side, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side] / side
    pictures = []
    for _ in range(count):
        coarse = rng.uniform(0, 1, (4, 4, 3))
        field = np.stack([np.interp(xx * 3, np.arange(4), coarse[int(round(2 * rng.random())), :, c]) * 0.5
                          + np.interp(yy * 3, np.arange(4), coarse[:, int(round(2 * rng.random())), c]) * 0.5
                          for c in range(3)], axis=-1)
        for _ in range(rng.integers(1, 4)):
            cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)
            field[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = rng.uniform(0, 1, 3)
        field = field + rng.normal(0, 0.05, field.shape)
        pictures.append(np.clip(field, 0, 1) * 2 - 1)
    return np.asarray(pictures, dtype="float32")


def narrow_inception_v3(width: float = 0.125, seed: int = 0) -> keras.Model:
    """The narrow network, initialised as the module says (deterministic for a seed)."""
    if not 0 < width < 1:
        raise ValueError(f"width must be between 0 and 1 (exclusive), got {width}")
    model = inception_v3_base((None, None, 3), width)
    rng = np.random.default_rng(seed)
    norms = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
            kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape).astype("float32"))
        elif isinstance(layer, keras.layers.BatchNormalization):
            norms.append(layer)
    # What reaches every BatchNorm, in one model; each pass sets every BatchNorm from its input, and a
    # BatchNorm's input is final once every BatchNorm above it is: the passes stop when nothing moves.
    probe = keras.Model(model.input, [norm.input for norm in norms])
    pictures = generated_pictures(seed=seed)
    with np.errstate(all="ignore"):  # early passes can overflow below BatchNorms not yet set; later ones do not
        _set_statistics(probe, norms, pictures)
    return model


def _set_statistics(probe: keras.Model, norms: list, pictures: np.ndarray) -> None:
    """Each BatchNorm's moving mean and variance set to what reaches it over `pictures`, pass after pass."""
    for _ in range(len(norms)):
        moved = 0.0
        reached_all = probe.predict(pictures, verbose=0, batch_size=len(pictures))
        for norm, reached in zip(norms, reached_all):
            if not np.isfinite(reached).all():
                moved = np.inf
                continue
            mean, variance = reached.mean(axis=(0, 1, 2)), reached.var(axis=(0, 1, 2)) + 1e-6
            moved = max(moved, float(np.abs(norm.moving_mean.numpy() - mean).max()),
                        float(np.abs(norm.moving_variance.numpy() - variance).max() / variance.max()))
            norm.moving_mean.assign(mean)
            norm.moving_variance.assign(variance)
        if moved < 1e-6:
            break


def write_narrow_weights(path: str | Path, width: float = 0.125, seed: int = 0) -> Path:
    """The narrow network's weights as a `.weights.h5` file that `--weights PATH` takes (declaring its width)."""
    return save_backbone_weights(narrow_inception_v3(width, seed), path, width)

