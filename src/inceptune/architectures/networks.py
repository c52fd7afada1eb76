"""Whole Inception networks from the blocks, for any input size and channel count.

    single-module   the Keras guide's net: one module of three 10-filter branches,
                    Flatten, Dense 1200-600-150, softmax (made for 48x48x1 faces)
    googlenet       Inception-v1 as in the paper's Table 1 (Szegedy et al., 2014),
                    optional auxiliary classifiers after 4a and 4d
    inception-v3    Inception-v3 (Szegedy et al., 2015) as keras.applications lays it
                    out, with a width multiplier
    mini-inception  a compact net for small images: a short stem, two v1 modules,
                    a grid reduction, two more modules, global pooling

Every builder takes `input_shape` (H, W, C) and `classes` and returns an
uncompiled `keras.Model` whose output is the softmax (a list of outputs
when GoogLeNet has its auxiliary classifiers).
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from inceptune.architectures import blocks
from inceptune.architectures.inception_v3 import MIN_SIDE, inception_v3_features
from inceptune.errors import UserError
from inceptune.settings.schema import ARCHITECTURES

layers = keras.layers


def single_module_net(input_shape=(48, 48, 1), classes: int = 7, filters: int = 10) -> keras.Model:
    """The Keras Inception guide's network: 83,760,487 parameters at 48x48x1 and 7 classes."""
    inputs = keras.Input(input_shape, name="image")
    relu = dict(padding="same", activation="relu")
    x = layers.Concatenate(name="inception")([
        layers.Conv2D(filters, 3, **relu, name="tower_1_3x3")(layers.Conv2D(filters, 1, **relu, name="tower_1_1x1")(inputs)),
        layers.Conv2D(filters, 5, **relu, name="tower_2_5x5")(layers.Conv2D(filters, 1, **relu, name="tower_2_1x1")(inputs)),
        layers.Conv2D(filters, 1, **relu, name="tower_3_1x1")(
            layers.MaxPooling2D(3, strides=1, padding="same", name="tower_3_pool")(inputs)),
    ])
    x = layers.Flatten(name="flatten")(x)
    for units in (1200, 600, 150):
        x = layers.Dense(units, activation="relu", name=f"dense_{units}")(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="predictions")(x),
                       name="single_module")


# Table 1 of "Going deeper with convolutions": #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet(input_shape=(224, 224, 3), classes: int = 1000, aux_classifiers: bool = False,
              batch_norm: bool = False) -> keras.Model:
    """GoogLeNet (Inception-v1) as in the paper's Table 1, without local response normalisation
    (BatchNorm instead with `batch_norm=True`). 6,998,552 parameters at 224x224x3 and 1000 classes."""
    bn = dict(batch_norm=batch_norm)
    inputs = keras.Input(input_shape, name="image")
    x = blocks.conv(inputs, 64, 7, strides=2, name="conv1_7x7", **bn)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = blocks.conv(x, 64, 1, name="conv2_3x3_reduce", **bn)
    x = blocks.conv(x, 192, 3, name="conv2_3x3", **bn)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    aux = []
    for stage in ("3a", "3b", "pool3", "4a", "4b", "4c", "4d", "4e", "pool4", "5a", "5b"):
        if stage.startswith("pool"):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=stage)(x)
            continue
        x = blocks.reduction_module(x, *GOOGLENET_MODULES[stage], name=f"inception_{stage}", **bn)
        if aux_classifiers and stage in ("4a", "4d"):
            aux.append(_auxiliary_classifier(x, classes, f"aux_{stage}", bn))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, [outputs, *aux] if aux else outputs, name="googlenet")


def _auxiliary_classifier(x, classes: int, name: str, bn: dict):
    """The paper's side classifier: 5x5/3 average pooling, 1x1 conv 128, FC 1024, 70% dropout, softmax."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = blocks.conv(x, 128, 1, name=f"{name}_conv", **bn)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(classes, activation="softmax", name=f"{name}_predictions")(x)


def inception_v3(input_shape=(299, 299, 3), classes: int = 1000, width: float = 1.0,
                 dropout: float = 0.0) -> keras.Model:
    """Inception-v3 from scratch: 23,851,784 parameters at 299x299x3, 1000 classes and width 1
    (as keras.applications.InceptionV3). Inputs of 75x75 or more, any number of channels."""
    if min(input_shape[:2]) < MIN_SIDE:
        raise UserError(f"Inception-v3 needs inputs of at least {MIN_SIDE}x{MIN_SIDE}, "
                        f"got {input_shape[0]}x{input_shape[1]}.")
    inputs = keras.Input(input_shape, name="image")
    x = inception_v3_features(inputs, width)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="predictions")(x),
                       name="inception_v3")


def mini_inception(input_shape=(48, 48, 1), classes: int = 7, width: float = 1.0,
                   dropout: float = 0.3) -> keras.Model:
    """A compact Inception for small images (e.g. 48x48 grayscale faces): 0.34M parameters at width 1.

    BatchNorm momentum 0.9: small datasets give few steps per epoch, and the
    moving statistics used at inference must settle within them."""
    def w(filters: int) -> int:
        return max(1, round(filters * width))

    bn = dict(batch_norm=True, bn_momentum=0.9)
    inputs = keras.Input(input_shape, name="image")
    x = blocks.conv(inputs, w(32), 3, name="stem_1", **bn)
    x = blocks.conv(x, w(64), 3, name="stem_2", **bn)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    x = blocks.reduction_module(x, w(32), w(32), w(48), w(8), w(16), w(16), name="inception_1a", **bn)
    x = blocks.reduction_module(x, w(48), w(48), w(64), w(12), w(24), w(24), name="inception_1b", **bn)
    x = layers.MaxPooling2D(2, name="pool_1")(x)
    x = blocks.reduction_module(x, w(64), w(64), w(96), w(16), w(32), w(32), name="inception_2a", **bn)
    x = blocks.reduction_module(x, w(96), w(64), w(128), w(16), w(48), w(48), name="inception_2b", **bn)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="predictions")(x),
                       name="mini_inception")


# By the names `train --arch` and `build` take (settings/schema.py).
BUILDERS: dict[str, Callable[..., keras.Model]] = dict(zip(ARCHITECTURES, (inception_v3, googlenet, mini_inception,
                                                                         single_module_net)))


def build_network(arch: str, input_shape: tuple[int, int, int], classes: int, **options) -> keras.Model:
    """Build a named architecture; unknown names and bad shapes are one-sentence errors."""
    if arch not in BUILDERS:
        raise UserError(f"Unknown architecture '{arch}'; expected one of {', '.join(ARCHITECTURES)}.")
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise UserError(f"--input-shape must be H,W,C with positive numbers, got {input_shape}.")
    if classes < 2:
        raise UserError(f"--classes must be at least 2, got {classes}.")
    try:
        return BUILDERS[arch](input_shape=tuple(input_shape), classes=classes, **options)
    except ValueError as exc:  # e.g. an input too small for the network's strides
        raise UserError(f"{arch} cannot be built for input shape {tuple(input_shape)}: "
                        f"{str(exc).splitlines()[0]}") from None
