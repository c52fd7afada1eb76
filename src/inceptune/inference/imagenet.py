"""ImageNet top-k with the pretrained InceptionV3 and its own 1000-way classifier.

The 1000 class ids and names ship with inceptune (resources/imagenet_classes.json,
Keras' order), so decoding needs no network.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

from inceptune.errors import UserError
from inceptune.inference.inputs import expand_inputs
from inceptune.inference.ranking import run_batches
from inceptune.models.backbone import load_inception_v3
from inceptune.models.weights import resolve_weights

IMAGE_SIZE = 299


@functools.cache
def imagenet_classes() -> list[tuple[str, str]]:
    """[(wnid, name)] for the 1000 ImageNet classes, by output index."""
    table = json.loads(resources.files("inceptune.resources").joinpath("imagenet_classes.json").read_text())
    return [tuple(table[str(i)]) for i in range(len(table))]


def decode_top(probabilities: np.ndarray, top: int = 5) -> list[dict]:
    """The `top` most probable ImageNet classes of one 1000-way output."""
    classes = imagenet_classes()
    order = np.argsort(-probabilities, kind="stable")[:top]
    return [{"index": int(i), "wnid": classes[i][0], "label": classes[i][1], "probability": float(probabilities[i])}
            for i in order]


def predict_imagenet(inputs: list[str] | str, top: int = 5, weights: str = "imagenet", batch_size: int = 16) -> list[dict]:
    """ImageNet top-k for images, with InceptionV3's own classifier.

    Args:
        inputs: image files and/or folders.
        top: how many classes per image.
        weights: "imagenet" (Keras' file, or INCEPTUNE_WEIGHTS) or a path to
            a full InceptionV3 weights file, classifier top included.
    """
    import keras

    paths = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))
    resolved = resolve_weights(weights, include_top=True)
    try:
        model = load_inception_v3(resolved, include_top=True)
    except ValueError:
        raise UserError(
            f"The weights at {resolved.path} have no ImageNet classifier top (or are not InceptionV3's), so they "
            "cannot name ImageNet classes; pass --weights PATH to a full InceptionV3 weights file."
        ) from None
    preprocess = keras.applications.inception_v3.preprocess_input

    def infer(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(preprocess(batch.copy())))

    return run_batches(paths, IMAGE_SIZE, batch_size, infer, lambda p: {"top": decode_top(p, top)})
