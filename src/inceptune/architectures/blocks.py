"""Inception building blocks, each a function that adds built-in Keras layers to a graph.

Built from built-in layers only, every block serialises with the model
(`model.keras` loads in Keras' safe mode, no custom objects) and draws as
its branches side by side in `plot_model`. Filter counts are arguments.

    naive_module          1x1, 3x3, 5x5 convolutions and 3x3 max-pooling, concatenated
    reduction_module      the same with 1x1 dimension reductions (GoogLeNet's "figure b")
    inception_v3_a        35x35: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 (factorised 5x5) | pool-1x1
    inception_v3_b        17x17: 1x1 | 1x1-1xn-nx1 | 1x1-nx1-1xn-nx1-1xn | pool-1x1
    inception_v3_c        8x8 expanded filter bank: 1x3 and 3x1 side by side
    grid_reduction_v3_a   35x35 -> 17x17, stride-2 convolutions beside max-pooling
    grid_reduction_v3_b   17x17 -> 8x8
"""

from __future__ import annotations

import keras

layers = keras.layers


def conv(x, filters: int, kernel, strides=1, padding: str = "same", batch_norm: bool = True, name: str | None = None,
         bn_momentum: float = 0.99):
    """Convolution + ReLU; with `batch_norm`, as Inception-v3 does it: no bias, BatchNorm without scale
    (`bn_momentum` lower than Keras' 0.99 lets the moving statistics settle within fewer steps)."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    if not batch_norm:
        return layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu", name=name)(x)
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                      name=f"{name}_conv" if name else None)(x)
    x = layers.BatchNormalization(scale=False, momentum=bn_momentum, name=f"{name}_bn" if name else None)(x)
    return layers.Activation("relu", name=name)(x)


def _n(name: str | None, suffix: str) -> str | None:
    return f"{name}_{suffix}" if name else None


def naive_module(x, f1x1: int, f3x3: int, f5x5: int, name: str | None = None, batch_norm: bool = False):
    """The naive inception module: 1x1, 3x3 and 5x5 convolutions and 3x3 max-pooling side by side."""
    return layers.Concatenate(name=name)([
        conv(x, f1x1, 1, batch_norm=batch_norm, name=_n(name, "1x1")),
        conv(x, f3x3, 3, batch_norm=batch_norm, name=_n(name, "3x3")),
        conv(x, f5x5, 5, batch_norm=batch_norm, name=_n(name, "5x5")),
        layers.MaxPooling2D(3, strides=1, padding="same", name=_n(name, "pool"))(x),
    ])


def reduction_module(x, f1x1: int, f3x3_reduce: int, f3x3: int, f5x5_reduce: int, f5x5: int, pool_proj: int,
                     name: str | None = None, batch_norm: bool = False, bn_momentum: float = 0.99):
    """The inception module with dimension reductions (GoogLeNet, figure 2b): 1x1 convolutions before
    the 3x3 and 5x5 convolutions and after the max-pooling."""
    bn = dict(batch_norm=batch_norm, bn_momentum=bn_momentum)
    return layers.Concatenate(name=name)([
        conv(x, f1x1, 1, name=_n(name, "1x1"), **bn),
        conv(conv(x, f3x3_reduce, 1, name=_n(name, "3x3_reduce"), **bn), f3x3, 3, name=_n(name, "3x3"), **bn),
        conv(conv(x, f5x5_reduce, 1, name=_n(name, "5x5_reduce"), **bn), f5x5, 5, name=_n(name, "5x5"), **bn),
        conv(layers.MaxPooling2D(3, strides=1, padding="same", name=_n(name, "pool"))(x), pool_proj, 1,
             name=_n(name, "pool_proj"), **bn),
    ])


def inception_v3_a(x, pool_features: int = 32, f1x1: int = 64, f5x5: tuple[int, int] = (48, 64),
                   f3x3dbl: tuple[int, int, int] = (64, 96, 96), name: str | None = None):
    """Inception-v3 block at 35x35 (Keras' mixed0-mixed2)."""
    b5 = conv(conv(x, f5x5[0], 1, name=_n(name, "5x5_reduce")), f5x5[1], 5, name=_n(name, "5x5"))
    d = conv(x, f3x3dbl[0], 1, name=_n(name, "3x3dbl_reduce"))
    d = conv(conv(d, f3x3dbl[1], 3, name=_n(name, "3x3dbl_1")), f3x3dbl[2], 3, name=_n(name, "3x3dbl_2"))
    pool = layers.AveragePooling2D(3, strides=1, padding="same", name=_n(name, "pool"))(x)
    return layers.Concatenate(name=name)([conv(x, f1x1, 1, name=_n(name, "1x1")), b5, d,
                                          conv(pool, pool_features, 1, name=_n(name, "pool_proj"))])


def inception_v3_b(x, c7: int = 128, f_out: int = 192, n: int = 7, name: str | None = None):
    """Inception-v3 block at 17x17 (mixed4-mixed7): n x n convolutions factorised into 1 x n and n x 1."""
    b7 = conv(x, c7, 1, name=_n(name, "7x7_reduce"))
    b7 = conv(conv(b7, c7, (1, n), name=_n(name, "1x7")), f_out, (n, 1), name=_n(name, "7x1"))
    d = conv(x, c7, 1, name=_n(name, "7x7dbl_reduce"))
    for i, kernel in enumerate(((n, 1), (1, n), (n, 1), (1, n))):
        d = conv(d, f_out if i == 3 else c7, kernel, name=_n(name, f"7x7dbl_{i + 1}"))
    pool = layers.AveragePooling2D(3, strides=1, padding="same", name=_n(name, "pool"))(x)
    return layers.Concatenate(name=name)([conv(x, f_out, 1, name=_n(name, "1x1")), b7, d,
                                          conv(pool, f_out, 1, name=_n(name, "pool_proj"))])


def inception_v3_c(x, f1x1: int = 320, f3x3: int = 384, f3x3dbl: int = 448, pool_features: int = 192,
                   name: str | None = None):
    """Inception-v3 block at 8x8 (mixed9, mixed10): the expanded filter bank, 1x3 and 3x1 side by side."""
    def split(t, label):
        return layers.Concatenate(name=_n(name, f"{label}_concat"))([
            conv(t, f3x3, (1, 3), name=_n(name, f"{label}_1x3")),
            conv(t, f3x3, (3, 1), name=_n(name, f"{label}_3x1")),
        ])

    b3 = split(conv(x, f3x3, 1, name=_n(name, "3x3_reduce")), "3x3")
    d = conv(conv(x, f3x3dbl, 1, name=_n(name, "3x3dbl_reduce")), f3x3, 3, name=_n(name, "3x3dbl_1"))
    d = split(d, "3x3dbl")
    pool = layers.AveragePooling2D(3, strides=1, padding="same", name=_n(name, "pool"))(x)
    return layers.Concatenate(name=name)([conv(x, f1x1, 1, name=_n(name, "1x1")), b3, d,
                                          conv(pool, pool_features, 1, name=_n(name, "pool_proj"))])


def grid_reduction_v3_a(x, f3x3: int = 384, f3x3dbl: tuple[int, int, int] = (64, 96, 96), name: str | None = None):
    """35x35 -> 17x17 (mixed3): stride-2 convolutions and max-pooling side by side."""
    d = conv(x, f3x3dbl[0], 1, name=_n(name, "3x3dbl_reduce"))
    d = conv(conv(d, f3x3dbl[1], 3, name=_n(name, "3x3dbl_1")), f3x3dbl[2], 3, strides=2, padding="valid",
             name=_n(name, "3x3dbl_2"))
    return layers.Concatenate(name=name)([
        conv(x, f3x3, 3, strides=2, padding="valid", name=_n(name, "3x3")), d,
        layers.MaxPooling2D(3, strides=2, name=_n(name, "pool"))(x),
    ])


def grid_reduction_v3_b(x, f3x3: tuple[int, int] = (192, 320), f7x7x3: int = 192, n: int = 7,
                        name: str | None = None):
    """17x17 -> 8x8 (mixed8)."""
    b3 = conv(conv(x, f3x3[0], 1, name=_n(name, "3x3_reduce")), f3x3[1], 3, strides=2, padding="valid",
              name=_n(name, "3x3"))
    b7 = conv(x, f7x7x3, 1, name=_n(name, "7x7x3_reduce"))
    b7 = conv(conv(b7, f7x7x3, (1, n), name=_n(name, "7x7x3_1x7")), f7x7x3, (n, 1), name=_n(name, "7x7x3_7x1"))
    b7 = conv(b7, f7x7x3, 3, strides=2, padding="valid", name=_n(name, "7x7x3_3x3"))
    return layers.Concatenate(name=name)([b3, b7, layers.MaxPooling2D(3, strides=2, name=_n(name, "pool"))(x)])
