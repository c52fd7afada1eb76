"""What a network costs and how it looks: parameters, multiply-accumulates, diagrams."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import keras

from inceptune.atomic import atomic_path
from inceptune.errors import UserError

GRAPHVIZ_HINT = ("Graphviz is needed to draw the diagram: install it with 'apt-get install graphviz' "
                 "(Debian/Ubuntu) or 'brew install graphviz' (macOS), then retry.")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of one input (convolutions and dense layers;
    pooling, normalisation and activations add no multiplications worth counting)."""
    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += math.prod(layer.output.shape[1:]) * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1] // layer.groups
            total += math.prod(layer.output.shape[1:]) * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            positions = math.prod(layer.output.shape[1:-1]) if len(layer.output.shape) > 2 else 1
            total += positions * layer.input.shape[-1] * layer.units
    return int(total)


def _all_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def describe(model: keras.Model) -> dict:
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = model.count_params()
    return {"name": model.name, "input_shape": list(model.input_shape[1:]), "layers": len(list(_all_layers(model))),
            "parameters": int(total), "trainable_parameters": int(trainable),
            "non_trainable_parameters": int(total - trainable), "macs": count_macs(model)}


def plot(model: keras.Model, path: str | os.PathLike, show_shapes: bool = True) -> Path:
    """The architecture diagram (PNG or SVG by the file's suffix), branches side by side, via Graphviz."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise UserError(f"--plot must name a .png or .svg file, got {path.name}.")
    dot = to_dot(model, show_shapes)
    with atomic_path(path) as tmp:
        tmp.write_bytes(dot.create(format=path.suffix.lower()[1:]))
    return path


def to_dot(model: keras.Model, show_shapes: bool = True):
    """The model as a pydot graph (top to bottom; parallel branches share a rank)."""
    try:
        import pydot
    except ImportError:
        raise UserError("Drawing needs pydot: pip install pydot.") from None
    if shutil.which("dot") is None:
        raise UserError(GRAPHVIZ_HINT)
    del pydot
    return keras.utils.model_to_dot(model, show_shapes=show_shapes, show_layer_names=True, rankdir="TB", dpi=72)
