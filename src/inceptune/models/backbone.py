"""The Inception-v3 backbone: building it, naming its blocks, freezing it.

Blocks are named as Keras names their outputs, `mixed0` ... `mixed10`.
Fine-tuning "from mixed9" trains every layer after `mixed8`'s output, which
is the classic recipe's `model.layers[249:]`. BatchNormalization layers stay
frozen, and so in inference mode, whatever is unfrozen, unless asked to
train (`train --train-batchnorm`).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import keras

from inceptune.architectures.inception_v3 import inception_v3_base
from inceptune.errors import UserError
from inceptune.vocabulary.inception import BLOCKS, MIN_IMAGE_SIZE
from inceptune.models.weights import WIDTH_ATTRIBUTE, Weights


def build_backbone(weights: Weights, image_size: int) -> keras.Model:
    """InceptionV3 without its classifier top, taking (image_size, image_size, 3) inputs in [-1, 1]
    (of the width the weights file declares: keras.applications' own at width 1)."""
    check_image_size(image_size)
    try:
        if weights.width != 1.0:
            return load_narrow_inception_v3(weights, (image_size, image_size, 3))
        return load_inception_v3(weights, include_top=False, input_shape=(image_size, image_size, 3))
    except ValueError as exc:
        raise UserError(
            f"The weights file {weights.path} does not fit InceptionV3 without its classifier top ({exc})."
        ) from None


def load_inception_v3(weights: Weights, include_top: bool, input_shape=None) -> keras.Model:
    """keras.applications.InceptionV3 with `weights`, strictly (a narrow network's file has no top to load).

    Keras only warns when parts of a weights file do not match the model
    (those layers silently keep random weights); here any mismatch raises.

    Raises:
        ValueError: with the first line of what went wrong.
    """
    if weights.width != 1.0:
        raise ValueError(f"the file holds an Inception-v3 of width {weights.width:g}, without a classifier top")
    return _with_weights(weights, include_top, lambda: keras.applications.InceptionV3(
        include_top=include_top, weights=None, input_shape=input_shape))


def load_narrow_inception_v3(weights: Weights, input_shape) -> keras.Model:
    """The narrow Inception-v3 a weights file declares, with its weights (strictly, as load_inception_v3).

    Raises:
        ValueError: with the first line of what went wrong.
    """
    return _with_weights(weights, False, lambda: inception_v3_base(input_shape, weights.width))


# The weights of the last files read, by content: a process builds the same backbone many times (extraction,
# the head's model, the refit; every trial of a search), and reading an HDF5 file costs more than building.
_READ: OrderedDict[tuple, list] = OrderedDict()
_READ_FILES = 2  # the full network's weights take 92 MB


def _with_weights(weights: Weights, include_top: bool, build) -> keras.Model:
    """`build()`'s model with `weights`: read from the file, strictly, the first time; from memory after."""
    model = build()
    if weights.path is None:
        return model
    key = (weights.fingerprint, weights.width, include_top)
    if key in _READ:
        model.set_weights(_READ[key])
        _READ.move_to_end(key)
        return model
    _strictly(lambda: model.load_weights(str(weights.path)), also=("mismatch",))
    _READ[key] = model.get_weights()
    while len(_READ) > _READ_FILES:
        _READ.popitem(last=False)
    return model


def _strictly(load, also: tuple[str, ...] = ()):
    """What `load()` returns, except that a weights file that does not fit raises (Keras only warns, and
    those layers keep random weights); `also`: further words of such a warning.

    Raises:
        ValueError: with the first line of what went wrong.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load()
    except (ValueError, OSError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(first_line[:160]) from None
    mismatch = [w for w in caught if any(word in str(w.message) for word in ("retain", "Skipping", *also))]
    if mismatch:
        raise ValueError(str(mismatch[0].message).splitlines()[0][:160])
    return loaded


def save_backbone_weights(model: keras.Model, path: str | Path, width: float) -> Path:
    """Write an Inception-v3 base's weights as a `.weights.h5` file that `--weights PATH` takes, declaring
    its width (a narrow network is built to match when the file is read)."""
    import h5py

    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"{path}: a backbone's weights file must end in .weights.h5")
    model.save_weights(str(path))
    if width != 1.0:
        with h5py.File(path, "a") as f:
            f.attrs[WIDTH_ATTRIBUTE] = float(width)
    return path


def check_image_size(image_size: int) -> None:
    if image_size < MIN_IMAGE_SIZE:
        raise UserError(f"--image-size must be at least {MIN_IMAGE_SIZE} for InceptionV3, got {image_size}.")


def check_block(name: str) -> str:
    if name not in BLOCKS:
        raise UserError(f"Unknown block '{name}'; expected one of {', '.join(BLOCKS)}.")
    return name


def block_start(backbone: keras.Model, block: str) -> int:
    """Index in `backbone.layers` of the first layer of `block`."""
    check_block(block)
    names = [layer.name for layer in backbone.layers]
    if block == "mixed0":
        # The stem ends with the last max-pooling before mixed0.
        end = names.index("mixed0")
        return max(i for i in range(end) if isinstance(backbone.layers[i], keras.layers.MaxPooling2D)) + 1
    previous = BLOCKS[BLOCKS.index(block) - 1]
    if previous not in names:  # the backbone's part from `block` on (top_of_backbone): after its input
        return next(i for i, layer in enumerate(backbone.layers) if not isinstance(layer, keras.layers.InputLayer))
    return names.index(previous) + 1


def block_layers(backbone: keras.Model, block: str) -> list[keras.layers.Layer]:
    """The layers of `block`, from its first layer to the concatenation named after it."""
    names = [layer.name for layer in backbone.layers]
    return backbone.layers[block_start(backbone, block):names.index(block) + 1]


def boundary_layer(backbone: keras.Model, block: str) -> keras.layers.Layer:
    """The layer whose output is the only input of `block` and everything after it."""
    return backbone.layers[block_start(backbone, block) - 1]


def top_of_backbone(backbone: keras.Model, block: str) -> keras.Model:
    """The part of the backbone from `block` on, sharing its layers (and weights)."""
    return keras.Model(boundary_layer(backbone, block).output, backbone.output, name=f"backbone_from_{block}")


def freeze(backbone: keras.Model, unfreeze_from: str | None, train_batchnorm: bool = False) -> None:
    """Freeze everything before `unfreeze_from` (all of it if None).

    BatchNorm layers of the unfrozen part stay frozen too (inference mode:
    moving statistics, no updates) unless `train_batchnorm`.
    """
    backbone.trainable = True
    start = len(backbone.layers) if unfreeze_from is None else block_start(backbone, unfreeze_from)
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= start and (train_batchnorm or not isinstance(layer, keras.layers.BatchNormalization))
