"""One object for a trained run: `inceptune.load(RUN)` answers predict, probabilities, explain and evaluate.

    model = inceptune.load("runs/flowers", runtime="auto")
    model.classes                       class names, in output order
    model.predict(["rose.jpg"], top=3)  ranked classes per image (what `inceptune predict --json` prints)
    model.predict_proba(inputs)         a (N, classes) array, and the inputs that failed and why
    model.explain("rose.jpg")           a Grad-CAM heatmap and the model's probabilities
    model.evaluate()                    metrics, plots and report.html on the run's test split, or on a folder

The runtime is chosen once, when the run is loaded: an export of the run
(ONNX, OpenVINO, ...; see inference/runtimes.py) or Keras. The Keras model is
loaded only when Keras answers or Grad-CAM is asked for, and then once.
`predict` and `evaluate` (the functions) keep the last runs they loaded, so
calling them again does not load the model again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.data.images import load_image
from inceptune.data.pipeline import resize_image
from inceptune.errors import ImageError, UserError
from inceptune.evaluation.conformal import check_coverage, sets_at, thresholds as set_thresholds
from inceptune.evaluation.evaluate import evaluation_records, write_evaluation
from inceptune.inference.gradcam import GradCam
from inceptune.inference.inputs import expand_inputs
from inceptune.inference.ranking import answer, run_batches
from inceptune.inference.fastest import export_ood_threshold, find_runtime
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.inference.tta import with_tta
from inceptune.models.classifier import class_probabilities
from inceptune.models.ood import split_outputs
from inceptune.runs import RunFolder
from inceptune.settings.schema import DEFAULTS

@dataclass
class Probabilities:
    paths: list[str]  # the inputs that could be read, in input order
    values: np.ndarray  # (len(paths), classes): softmax rows, or one sigmoid per label when multi-label
    failed: dict[str, str]  # input -> why it could not be read


class TrainedModel:
    """A run folder's classifier, loaded once, on the runtime chosen when loading.

    Args:
        run: a run folder written by `train`.
        runtime: auto (the fastest checked export on this machine, timed the first time; int8 only when its
            accuracy check passed; else Keras), keras, onnx, openvino, or an export such as onnx-int8.
        unsafe: load a model that carries Python code (a Lambda layer); only for trusted files.
    """

    def __init__(self, run: str, runtime: str = DEFAULT_RUNTIME, unsafe: bool = False):
        self.folder = RunFolder.open(run)
        self.classes = self.folder.classes
        self.task = self.folder.task
        self.thresholds = self.folder.thresholds  # a multi-label run's, per label; None for one label per image
        self.ood_threshold = self.folder.ood_threshold  # above it, "none of these"; None: the model has no score
        self.sets = None if self.folder.task == "multilabel" else self.folder.sets  # None: no prediction sets
        self._set_thresholds: dict[float | None, np.ndarray] = {}  # by coverage: computed once, not per image
        self.image_size = self.folder.image_size
        self._unsafe, self._keras, self._gradcams = unsafe, None, {}
        chosen = find_runtime(self.folder.path, runtime)
        if chosen is None:
            self.runtime = "keras"
            self._raw = self.keras_model.predict_on_batch  # loaded now: a refused model fails here, not later
        else:
            self.runtime, exported = chosen
            console.info(f"Runtime: {self.runtime} ({self.folder.path / 'export' / self.runtime})")
            self._raw = lambda x: exported(self._at_size(x))
            if self.ood_threshold is not None:  # an int8 export's own threshold (deploy/accuracy.py), else the run's
                self.ood_threshold = export_ood_threshold(self.folder.path, self.runtime, self.ood_threshold)

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    @property
    def keras_model(self):
        """model.keras, loaded on first use."""
        if self._keras is None:
            self._keras = self.folder.load_model(self._unsafe)
        return self._keras

    @property
    def explainable(self) -> bool:
        """Grad-CAM needs the pretrained recipe's Inception-v3 base (a network from scratch has no blocks)."""
        config = self.folder.config
        return not config.get("scratch", config).get("arch")

    def batch(self, images) -> np.ndarray:
        """Decoded RGB images of any sizes as one (N, S, S, 3) batch at the run's size, resized as model.keras does."""
        return np.stack([resize_image(image, self.image_size) for image in images])

    def _at_size(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels at the run's image size: exported models take no other."""
        return pixels if pixels.shape[1:3] == (self.image_size,) * 2 else self.batch(pixels)

    # === Answers ===

    def _answered(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        probs, ood = split_outputs(self._raw(pixels))
        probs = class_probabilities(probs, self.multilabel)
        if probs.shape[-1] != len(self.classes):
            raise UserError(f"{self.folder.file('labels.json')} names {len(self.classes)} classes but the model "
                            f"({self.runtime}) answers {probs.shape[-1]}; the run folder was changed by hand or "
                            "damaged.")
        return probs, ood

    def infer(self, pixels: np.ndarray, tta: int = 1) -> np.ndarray:
        """Class probabilities (N, classes) of decoded RGB pixels (N, H, W, 3) in 0..255, any size."""
        return with_tta(lambda x: self._answered(x)[0], tta)(pixels)

    def infer_scored(self, pixels: np.ndarray, tta: int = 1) -> np.ndarray:
        """(N, classes + 1): the class probabilities, then the OOD score (NaN when the model answers none; of
        the image itself, not of its test-time views)."""
        probs, ood = self._answered(pixels)
        if tta > 1:
            probs = self.infer(pixels, tta)
        return np.column_stack([probs, np.full(len(probs), np.nan) if ood is None else ood])

    def describe(self, row: np.ndarray, top: int, coverage: float | None = None) -> dict:
        """One `infer_scored` row as the answer `predict` and `serve` give (the prediction set at `coverage`,
        by default the run's)."""
        in_set = None
        if self.sets is not None:
            if coverage not in self._set_thresholds:
                self._set_thresholds[coverage] = set_thresholds(self.sets, len(self.classes), coverage)
            in_set = sets_at(row[:-1], self.sets["score"], self._set_thresholds[coverage])[0]
        return answer(self.classes, row[:-1], top, self.thresholds, (float(row[-1]), self.ood_threshold), in_set)

    def predict_proba(self, inputs, batch_size: int = DEFAULTS["batch_size"], tta: int = 1) -> Probabilities:
        """Probabilities of image files and folders; the inputs that could not be read are in `failed`."""
        paths = expand_inputs([inputs] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs])
        rows = self._rows(paths, batch_size, tta)
        read = [r for r in rows if "error" not in r]
        values = np.array([r["p"][:-1] for r in read], dtype=np.float64).reshape(len(read), len(self.classes))
        return Probabilities([r["path"] for r in read], values, {r["path"]: r["error"] for r in rows if "error" in r})

    def predict(self, inputs, top: int = 5, batch_size: int = DEFAULTS["batch_size"], tta: int = 1,
                coverage: float | None = None) -> list[dict]:
        """One dict per image, in input order: `path`, `top` (a list of `{"label", "probability"}`),
        `probabilities` (every class), `labels` (multi-label: every label at or above its threshold, labels.json's), `unknown` and `ood_score`
        (when the run has an OOD score: unknown is "none of these"), `set` (the prediction set: the classes that
        hold the true one for `coverage` of photos like the run's, by default the coverage it was trained
        for; when the run has sets), or `error`."""
        check_coverage(coverage)
        paths = expand_inputs([inputs] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs])
        return run_batches(paths, self.image_size, batch_size, lambda x: self.infer_scored(x, tta),
                           lambda row: self.describe(row, top, coverage))

    def explain(self, image, class_name: str | None = None, block: str = "mixed10") -> dict:
        """Grad-CAM of one image (a path or RGB pixels): `heatmap` (H, W) in [0, 1] at the image's size,
        the explained `class` and its `probability`, and every class's `probabilities`."""
        if class_name is not None and class_name not in self.classes:
            raise UserError(f"Unknown class '{class_name}'; the model knows {', '.join(self.classes)}.")
        try:
            pixels = image if isinstance(image, np.ndarray) else load_image(image)
        except ImageError as exc:
            raise UserError(f"{image} cannot be explained: {exc.reason}.") from None
        if block not in self._gradcams:
            self._gradcams[block] = GradCam(self.keras_model, self.image_size, block)
        index = None if class_name is None else self.classes.index(class_name)
        heatmap, probs = self._gradcams[block](pixels, index)
        index = int(np.argmax(probs)) if index is None else index
        return {"class": self.classes[index], "probability": float(probs[index]), "heatmap": heatmap,
                "probabilities": {c: float(p) for c, p in zip(self.classes, probs)}}

    def evaluate(self, data: str | None = None, split: str = "test", batch_size: int = DEFAULTS["batch_size"], tta: int = 1,
                 coverage: float | None = None) -> dict:
        """Metrics (scikit-learn), plots and a report on the run's `split`, or on a folder of the same classes;
        with prediction sets, their realised coverage and mean size (at `coverage`, by default the run's)."""
        check_coverage(coverage)
        records, source, target = evaluation_records(self.folder, data, split)
        rows = self._rows([r.path for r in records], batch_size, tta)  # one row per record, in order
        kept = [(record, row["p"]) for record, row in zip(records, rows) if "error" not in row]
        if not kept:
            raise UserError(f"None of the images in {source} could be read.")
        scored = np.array([p for _, p in kept])
        ood = None if self.ood_threshold is None else scored[:, -1]
        metrics = write_evaluation(target, [r for r, _ in kept], self.classes, scored[:, :-1],
                                   folder=self.folder, source=source, ood_scores=ood, ood_threshold=self.ood_threshold,
                                   coverage=coverage, extra={"tta": tta, "runtime": self.runtime,
                                          "unreadable": [row["path"] for row in rows if "error" in row]})
        if data is None and split == "test" and tta == 1 and self.runtime != "keras":
            self._say_if_unlike_the_run(metrics)
        return metrics

    def _say_if_unlike_the_run(self, metrics: dict) -> None:
        """An export answers the test split: say so when its accuracy differs from the run's own figure (Keras,
        written by train) by more than one photo."""
        measured = (self.folder.read_json("metrics.json").get("test") or {}).get("accuracy")
        got = metrics.get("accuracy")
        if measured is None or got is None or abs(got - measured) * metrics["images"] <= 1 + 1e-9:
            return
        console.warn(f"the {self.runtime} export answers {got:.2%} of the test split right where the run measured "
                     f"{measured:.2%} with model.keras: more than one photo apart; --runtime keras gives the run's "
                     "own answers")

    def _rows(self, paths: list[str], batch_size: int, tta: int) -> list[dict]:
        """Per path, in order: {"path", "p": probabilities and the OOD score (infer_scored)} or {"path", "error"}."""
        return run_batches(paths, self.image_size, batch_size, lambda x: self.infer_scored(x, tta),
                           lambda p: {"p": p})


def load(run: str, runtime: str = DEFAULT_RUNTIME, unsafe: bool = False) -> TrainedModel:
    """Load a run folder's model once, for any number of predictions.

    Examples:
        >>> model = inceptune.load("runs/flowers")
        >>> model.predict(["rose.jpg"], top=2)
        [{'path': 'rose.jpg', 'top': [{'label': 'roses', 'probability': 0.97}, ...], ...}]
        >>> model.predict_proba("more_photos/").values.shape
        (40, 5)
    """
    return TrainedModel(run, runtime=runtime, unsafe=unsafe)


_RECENT: OrderedDict = OrderedDict()  # the last runs the functions below loaded
_RECENT_SIZE = 2


def recent(run: str, runtime: str = DEFAULT_RUNTIME, unsafe: bool = False) -> TrainedModel:
    """A loaded run, reused while its model file, labels, config and exports are unchanged."""
    path = Path(run).resolve()
    stamps = tuple(p.stat().st_mtime_ns for p in (path / "model.keras", path / "labels.json", path / "config.json",
                                                  path / "export") if p.exists())
    key = (str(path), runtime, unsafe, stamps)
    if key not in _RECENT:
        _RECENT[key] = load(run, runtime, unsafe)
        while len(_RECENT) > _RECENT_SIZE:
            _RECENT.popitem(last=False)
    _RECENT.move_to_end(key)
    return _RECENT[key]


def predict(run: str, inputs, top: int = 5, batch_size: int = DEFAULTS["batch_size"], tta: int = 1, unsafe: bool = False,
            runtime: str = DEFAULT_RUNTIME, coverage: float | None = None) -> list[dict]:
    """Classify images with the model of a run folder; see `TrainedModel.predict`.

    Examples:
        >>> inceptune.predict("runs/photos", ["cat.jpg"], top=2)
        [{'path': 'cat.jpg', 'top': [{'label': 'cats', 'probability': 0.97}, ...], ...}]
    """
    return recent(run, runtime, unsafe).predict(inputs, top=top, batch_size=batch_size, tta=tta, coverage=coverage)


def evaluate(run: str, data: str | None = None, split: str = "test", batch_size: int = DEFAULTS["batch_size"], tta: int = 1,
             unsafe: bool = False, runtime: str = DEFAULT_RUNTIME, coverage: float | None = None) -> dict:
    """Metrics of a run's model on its held-out `split` or on a labelled folder; see `TrainedModel.evaluate`.

    Examples:
        >>> m = inceptune.evaluate("runs/flowers")
        >>> m["accuracy"], m["roc_auc"], m["confusion_matrix"]
    """
    return recent(run, runtime, unsafe).evaluate(data, split=split, batch_size=batch_size, tta=tta, coverage=coverage)
