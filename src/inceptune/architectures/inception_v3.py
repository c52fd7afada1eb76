"""Inception-v3's layout (Szegedy et al., 2015) as keras.applications builds it, with a width multiplier.

At width 1 the layers, their order and every weight's shape are keras.applications.InceptionV3's
(include_top=False); a narrower width keeps all of that but the channel counts: the same stem, the
same blocks `mixed0` ... `mixed10`, the same grid sizes. Used whole by `train --arch inception-v3`
(architectures/networks.py) and, without its top, as a narrow backbone (models/backbone.py).
"""

from __future__ import annotations

import keras

from inceptune.architectures import blocks

layers = keras.layers

MIN_SIDE = 75  # the smallest input the stem and grid reductions accept


def inception_v3_features(inputs, width: float = 1.0):
    """The stem and the eleven blocks on `inputs`: the `mixed10` activations."""
    def w(filters: int) -> int:
        return max(1, round(filters * width))

    x = blocks.conv(inputs, w(32), 3, strides=2, padding="valid", name="stem_1")
    x = blocks.conv(x, w(32), 3, padding="valid", name="stem_2")
    x = blocks.conv(x, w(64), 3, name="stem_3")
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool_1")(x)
    x = blocks.conv(x, w(80), 1, padding="valid", name="stem_4")
    x = blocks.conv(x, w(192), 3, padding="valid", name="stem_5")
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool_2")(x)
    for i, pool in enumerate((32, 64, 64)):
        x = blocks.inception_v3_a(x, w(pool), w(64), (w(48), w(64)), (w(64), w(96), w(96)), name=f"mixed{i}")
    x = blocks.grid_reduction_v3_a(x, w(384), (w(64), w(96), w(96)), name="mixed3")
    for i, c7 in enumerate((128, 160, 160, 192), start=4):
        x = blocks.inception_v3_b(x, w(c7), w(192), name=f"mixed{i}")
    x = blocks.grid_reduction_v3_b(x, (w(192), w(320)), w(192), name="mixed8")
    for i in (9, 10):
        x = blocks.inception_v3_c(x, w(320), w(384), w(448), w(192), name=f"mixed{i}")
    return x


def inception_v3_base(input_shape=(299, 299, 3), width: float = 1.0) -> keras.Model:
    """Inception-v3 without its classifier top (up to `mixed10`), named as keras.applications names it."""
    inputs = keras.Input(input_shape, name="image")
    return keras.Model(inputs, inception_v3_features(inputs, width), name="inception_v3")


def first_conv_width(model: keras.Model) -> float:
    """The width multiplier of an Inception-v3 laid out as above: its first convolution has 32 x width filters."""
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    return first.filters / 32
