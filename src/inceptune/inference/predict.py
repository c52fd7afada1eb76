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
    predictor = Predictor(run, runtime=runtime, tta=tta, unsafe=unsafe)
    paths = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))

    def describe(probs: np.ndarray) -> dict:
        result = rank_classes(predictor.classes, probs, top)
        if predictor.multilabel:  # independent yes/no answers: every label at or above 0.5
            result["labels"] = [c for c, p in zip(predictor.classes, probs) if p >= 0.5]
        return result

    return run_batches(paths, predictor.image_size, batch_size, predictor.infer, describe)


class Predictor:
    """A run's classifier, ready to answer: `infer` maps pixels (N, H, W, 3) to class probabilities (N, C).

    `runtime` keras, an export of the run (onnx, openvino, onnx-int8...) or auto;
    `runtime_name` says which one answers. Inputs at another size than the
    run's are resized first, the way the saved model does it.
    """

    def __init__(self, run: str, runtime: str = "keras", tta: int = 1, unsafe: bool = False):
        check_tta(tta)
        self.folder = RunFolder.open(run)
        self.classes = self.folder.classes
        self.multilabel = self.folder.read_json("labels.json").get("task") == "multilabel"
        self.image_size = int(self.folder.config["image_size"])
        self.model = self.folder.load_model(unsafe)
        self.runtime_name = "keras"
        infer = lambda x: class_probabilities(self.model.predict_on_batch(x), self.multilabel)  # noqa: E731
        chosen = run_runtime(self.folder.path, runtime) if runtime != "keras" else None
        if chosen is not None:
            self.runtime_name, exported = chosen
            console.info(f"Runtime: {self.runtime_name} ({self.folder.path / 'export' / self.runtime_name})")
            infer = lambda x: class_probabilities(exported(self.fit(x)), self.multilabel)  # noqa: E731
        self.infer = with_tta(infer, tta)

    def fit(self, x: np.ndarray) -> np.ndarray:
        """Pixels at the run's image size (exported models take no other)."""
        size = self.image_size
        return x if x.shape[1:3] == (size, size) else np.stack([resize_image(i, size) for i in x])


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
