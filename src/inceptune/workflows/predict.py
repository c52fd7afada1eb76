"""`predict`: ranked classes for images from whichever model is named, the way `inceptune predict` takes it.

    "imagenet"                  InceptionV3's own 1000-way classifier (inference/imagenet.py), unless a folder of
                                that name is here
    a fit-features model folder its scikit-learn classifier on vectors computed as its features file's were
    a run folder                its model (inference/model.py), in this process or, with engine="ray", on Ray
"""

from __future__ import annotations

import os
from pathlib import Path

from inceptune.engines.ray_engine import predict_with_ray
from inceptune.errors import UserError
from inceptune.inference.imagenet import predict_imagenet
from inceptune.inference.inputs import expand_inputs
from inceptune.inference.model import predict as predict_with_run
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.settings.schema import DEFAULTS
from inceptune.workflows.fit_features import is_features_model, predict_with_features_model

ENGINES = ("local", "ray")


def predict(model: str | os.PathLike, inputs: list[str] | str, top: int = 5, batch_size: int = DEFAULTS["batch_size"],
            tta: int = 1, unsafe: bool = False, runtime: str = DEFAULT_RUNTIME, weights: str | None = None,
            engine: str = "local", ray_address: str | None = None, coverage: float | None = None) -> list[dict]:
    """Rank classes for images (files and/or folders) with a run folder, a fit-features model folder, or
    "imagenet" for ImageNet's 1000 classes; one dict per image, in input order (an unreadable one: its error).

    Args:
        model: a run folder, a folder written by `fit_features(out=...)`, or "imagenet".
        inputs: image files and/or folders (a folder: its image files, sorted).
        top: how many classes per image.
        tta, unsafe, runtime: a run folder's test-time views, trust in its Python code, and runtime (see `load`).
        weights: for "imagenet", the weights file (default: Keras' file, or INCEPTUNE_WEIGHTS); for a fit-features
            model, a weights file when its features file names another machine's path (default, or "imagenet":
            the file the features were made with).
        engine: local, or ray (Ray Data with a pool of model actors) for a run folder.
        ray_address: the Ray cluster to join (default: $RAY_ADDRESS, else a local one is started).
        coverage: a run folder's prediction sets at this coverage (default: the one it was trained for).

    Examples:
        >>> inceptune.predict("runs/photos", ["cat.jpg"], top=2)
        [{'path': 'cat.jpg', 'top': [{'label': 'cats', 'probability': 0.97}, ...], ...}]
        >>> inceptune.predict("imagenet", ["cat.jpg"], top=1)[0]["top"][0]["label"]
        'tabby'
    """
    model = os.fspath(model)
    if model == "imagenet" and not Path("imagenet").is_dir():
        return predict_imagenet(inputs, top=top, weights=weights or DEFAULTS["weights"], batch_size=batch_size)
    if engine == "ray":
        paths = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))
        return predict_with_ray(model, paths, top=top, batch_size=batch_size, address=ray_address, unsafe=unsafe,
                                tta=tta, runtime=runtime, coverage=coverage)
    if engine not in ENGINES:
        raise UserError(f"--engine must be local or ray, got {engine}.")
    if is_features_model(model):
        return predict_with_features_model(model, inputs, top=top, batch_size=batch_size,
                                           weights=None if weights == "imagenet" else weights)
    return predict_with_run(model, inputs, top=top, batch_size=batch_size, tta=tta, unsafe=unsafe, runtime=runtime,
                            coverage=coverage)
