"""Predict with a trained run: ranked class probabilities per image."""

from __future__ import annotations

import numpy as np

from inceptune import console
from inceptune.data.pipeline import image_batches
from inceptune.data.pipeline import resize_image
from inceptune.deploy.runtimes import run_runtime
from inceptune.inference.inputs import expand_inputs
from inceptune.inference.tta import check_tta, with_tta
from inceptune.models.classifier import class_probabilities
from inceptune.runs import RunFolder


def predict(run: str, inputs: list[str] | str, top: int = 5, batch_size: int = 32, tta: int = 1,
            unsafe: bool = False, runtime: str = "keras") -> list[dict]:
    """Classify images with the model of a run folder.

    Args:
        run: a run folder written by `train`.
        inputs: image files and/or folders of images.
        top: how many classes to rank per image.
        tta: average over this many deterministic views (flips, crops); 1 = none.
        unsafe: load a model that carries Python code (a Lambda layer); only for trusted files.
        runtime: keras, onnx or openvino (an export in RUN/export/), or auto: the fastest export
            present whose runtime is installed, else Keras.

    Returns:
        One dict per image, in input order: `path`, `top` (a list of
        `{"label", "probability"}`), `probabilities` (every class), or
        `error` when the file could not be read.

    Examples:
        >>> inceptune.predict("runs/photos", ["cat.jpg"], top=2)
        [{'path': 'cat.jpg', 'top': [{'label': 'cats', 'probability': 0.97}, ...], ...}]
    """
    check_tta(tta)
    folder = RunFolder.open(run)
    classes = folder.classes
    image_size = int(folder.config["image_size"])
    model = folder.load_model(unsafe)
    paths = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))

    def rank(probs: np.ndarray) -> dict:
        return rank_classes(classes, probs, top)

    infer = lambda x: class_probabilities(model.predict_on_batch(x))  # noqa: E731
    chosen = run_runtime(folder.path, runtime) if runtime != "keras" else None
    if chosen is not None:
        name, exported = chosen
        console.info(f"Runtime: {name} ({folder.path / 'export' / name})")
        infer = lambda x: exported(x if x.shape[1:3] == (image_size, image_size)  # noqa: E731
                                   else np.stack([resize_image(i, image_size) for i in x]))
    infer = with_tta(infer, tta)
    return run_batches(paths, image_size, batch_size, infer, rank)


def rank_classes(classes: list[str], probs: np.ndarray, top: int) -> dict:
    """One image's result: the `top` classes by probability, and every class's probability."""
    order = np.argsort(-probs, kind="stable")[: max(1, top)]
    return {"top": [{"label": classes[i], "probability": float(probs[i])} for i in order],
            "probabilities": {c: float(p) for c, p in zip(classes, probs)}}


def run_batches(paths: list[str], image_size: int, batch_size: int, infer, describe) -> list[dict]:
    """Decode `paths` in parallel, run `infer` on batches, and `describe` each row of its output."""
    results: list[dict | None] = [None] * len(paths)
    with console.progress("Predicting", total=len(paths)) as advance:
        for batch in image_batches(paths, image_size, batch_size):
            for index, reason in batch.failures:
                results[index] = {"path": paths[index], "error": reason}
                console.warn(f"skipped {paths[index]}: {reason}")
            if batch.positions:
                outputs = infer(batch.images)
                for row, index in enumerate(batch.positions):
                    results[index] = {"path": paths[index], **describe(outputs[row])}
            advance(len(batch.positions) + len(batch.failures))
    return results
