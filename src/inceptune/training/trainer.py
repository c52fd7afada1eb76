"""`train`: a folder of images in, a fine-tuned Inception-v3 classifier and its run folder out.

    files -> load_dataset -> extract_features (one backbone pass per image)
          -> fit_two_phases: train_head (phase 1), fine_tune (phase 2)
          -> write_evaluation (test split: metrics, plots, report.html) -> run folder

`fit_two_phases` and the helpers around it are shared with `cv`, which
runs the same recipe once per fold on the same cached features.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from inceptune import __version__, console
from inceptune.data.dataset import Dataset, load_dataset, write_manifest
from inceptune.errors import UserError
from inceptune.evaluation.evaluate import write_evaluation
from inceptune.features.cache import FeatureCache, default_cache_dir, feature_space
from inceptune.features.extract import POOLED, ExtractionStats, activations_kind, extract_to_cache
from inceptune.models.backbone import build_backbone, check_block, check_image_size
from inceptune.models.classifier import Classifier, build_classifier, class_probabilities
from inceptune.models.weights import Weights, resolve_weights
from inceptune.runs import RunFolder
from inceptune.training.config import TrainConfig
from inceptune.training.data import CachedFeatures
from inceptune.training.phases import fine_tune, train_head


@dataclass
class TrainResult:
    run: Path
    metrics: dict


def train(data: str, **settings) -> TrainResult:
    """Train a classifier on a folder of class subfolders; see `TrainConfig` for the settings.

    Examples:
        >>> import inceptune
        >>> result = inceptune.train("photos/", out="runs/photos", weights="imagenet")
        >>> result.metrics["val"]["accuracy"]
    """
    config = make_config(data, settings)
    if config.arch:
        from inceptune.training.scratch import ScratchTrainer

        return ScratchTrainer(config).run()
    from inceptune.data.arrays import is_array_source

    if is_array_source(config.data):
        raise UserError(f"{config.data} holds arrays; train on arrays with --arch NAME --weights none "
                        "(the pretrained recipe reads folders of images).")
    return Trainer(config).run()


def make_config(data: str, settings: dict) -> TrainConfig:
    unknown = set(settings) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown train settings: {', '.join(sorted(unknown))}")
    return TrainConfig(data=str(data), **settings)


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config

    def run(self) -> TrainResult:
        c = self.config
        check_settings(c)
        dataset = load_dataset(c.data, c.val_split, c.test_split, c.seed, c.max_pixels)
        run = RunFolder.create(c.out or default_out(c.data), overwrite=c.overwrite)
        console.info(f"Run folder: {run.path}")
        weights = resolve_weights(c.weights)
        console.info(f"Weights: {weights.describe()}")
        classifier = new_classifier(weights, dataset, c)
        cache = feature_cache(c, weights)

        # === One backbone pass per image (cached), then both phases on cached data ===
        extraction = extract_features(dataset, cache, classifier, c)
        splits = SplitData(dataset, classifier, cache, c)
        fitted = fit_two_phases(classifier, splits, c, log_dir=run.file("tensorboard") if c.tensorboard else None)

        # === Evaluate and write the run folder ===
        metrics = {
            **{split: splits.evaluate(fitted.model, split, fitted.kind) for split in ("val", "test")},
            "phase1": {"seconds": round(extraction.seconds + fitted.phase1_seconds, 3),
                       "features": extraction.as_dict()},
            "phase2": {"seconds": round(fitted.phase2_seconds, 3),
                       "epochs_run": sum(1 for h in fitted.history if h["phase"] == "fine-tune"),
                       "kept": any(h["kept"] for h in fitted.history if h["phase"] == "fine-tune")},
        }
        self._write(run, dataset, classifier, fitted, splits, metrics, weights)
        say_results(run, metrics)
        if c.track:
            from inceptune.tracking import log_run

            log_run(run, c.track, c.tracking_uri)
        return TrainResult(run.path, metrics)

    def _write(self, run: RunFolder, dataset: Dataset, classifier: Classifier, fitted: "Fitted",
               splits: "SplitData", metrics: dict, weights: Weights) -> None:
        run.save_model(classifier.model)
        run.write_json("labels.json", {"classes": dataset.classes,
                                       "task": "binary" if classifier.binary else "multiclass"})
        run.write_json("config.json", {**self.config.as_dict(), "resolved_weights": weights.describe(),
                                       "weights_fingerprint": weights.fingerprint, "versions": versions()})
        run.write_rows("history.csv", fitted.history)
        write_manifest(dataset, run.file("manifest.csv"))
        run.write_json("dataset.json", dataset.summary())
        # The report: metrics and plots of the held-out split (test, else val), from the cached features.
        split = "test" if dataset.split("test") else "val" if dataset.split("val") else None
        if split:
            metrics["report"] = {"split": split}
            write_evaluation(run.path, dataset.split(split), dataset.classes,
                             splits.probabilities(fitted.model, split, fitted.kind),
                             folder=run, source=f"the {split} split")
        run.write_json("metrics.json", metrics)  # last: its presence marks a finished run


def check_settings(c: TrainConfig) -> None:
    check_image_size(c.image_size)
    if c.fine_tune_epochs > 0:
        check_block(c.unfreeze_from)


def new_classifier(weights: Weights, dataset: Dataset, c: TrainConfig) -> Classifier:
    """A fresh classifier (backbone weights loaded anew), seeded by the config."""
    keras.utils.set_random_seed(c.seed)
    return build_classifier(build_backbone(weights, c.image_size), len(dataset.classes), c.image_size, c.dropout,
                            tuple(c.head_units))


def feature_cache(c: TrainConfig, weights: Weights) -> FeatureCache:
    return FeatureCache(c.cache_dir or default_cache_dir(), feature_space(weights, c.image_size, c.seed))


def feature_kinds(c: TrainConfig) -> list[str]:
    """What one backbone pass must cache: pooled features, and the activations phase 2 starts from."""
    return [POOLED] + ([activations_kind(c.unfreeze_from)] if c.fine_tune_epochs > 0 else [])


def extract_features(dataset: Dataset, cache: FeatureCache, classifier: Classifier,
                     c: TrainConfig) -> ExtractionStats:
    stats = extract_to_cache(dataset.records, cache, classifier.backbone, feature_kinds(c), c.image_size,
                             c.batch_size)
    console.info(f"Features: {stats.images} images, {stats.from_cache} from cache, "
                 f"{stats.computed} computed ({stats.seconds:.1f}s).")
    return stats


@dataclass
class Fitted:
    history: list[dict]
    kind: str  # the cached feature kind the final model takes
    model: keras.Model  # cached features of `kind` -> probabilities (shares weights with classifier.model)
    phase1_seconds: float
    phase2_seconds: float


def fit_two_phases(classifier: Classifier, splits: "SplitData", c: TrainConfig, log_dir: Path | None = None) -> Fitted:
    """Phase 1 (the head on pooled features), then phase 2 (fine-tuning from `c.unfreeze_from`)."""
    start = time.perf_counter()
    history = train_head(classifier, splits.data("train", POOLED), splits.data("val", POOLED), c.epochs,
                         c.learning_rate, log_dir=log_dir)
    phase1 = time.perf_counter() - start
    kind, model, phase2 = POOLED, classifier.head_model(), 0.0
    if c.fine_tune_epochs > 0:
        start = time.perf_counter()
        kind = activations_kind(c.unfreeze_from)
        history += fine_tune(classifier, c.unfreeze_from, splits.data("train", kind), splits.data("val", kind),
                             c.fine_tune_epochs, c.fine_tune_lr, c.patience, log_dir=log_dir)
        phase2 = time.perf_counter() - start
        model = classifier.top_model(c.unfreeze_from)
    return Fitted(history, kind, model, phase1, phase2)


class SplitData:
    """Labels and cached-feature datasets per split."""

    def __init__(self, dataset: Dataset, classifier: Classifier, cache: FeatureCache, config: TrainConfig):
        self.dataset, self.classifier, self.cache, self.config = dataset, classifier, cache, config

    def labels(self, split: str) -> np.ndarray:
        y = np.array([self.dataset.label_index(r) for r in self.dataset.split(split)])
        return y.astype("float32").reshape(-1, 1) if self.classifier.binary else y.astype("int32")

    def data(self, split: str, kind: str) -> CachedFeatures | None:
        records = self.dataset.split(split)
        if not records:
            return None
        return CachedFeatures(records, self.labels(split), self.cache, kind, self.config.batch_size,
                              shuffle=split == "train", seed=self.config.seed)

    def probabilities(self, model: keras.Model, split: str, kind: str) -> np.ndarray:
        """(N, classes) probabilities of the split's images, in `dataset.split(split)` order."""
        return class_probabilities(model.predict(self.data(split, kind), verbose=0))

    def evaluate(self, model: keras.Model, split: str, kind: str) -> dict | None:
        if not self.dataset.split(split):
            return None
        probs = self.probabilities(model, split, kind)
        y = np.array([self.dataset.label_index(r) for r in self.dataset.split(split)])
        return {
            "images": int(len(y)),
            "accuracy": float(accuracy_score(y, probs.argmax(axis=1))),
            "loss": float(log_loss(y, probs, labels=list(range(len(self.dataset.classes))))),
        }


def default_out(data: str) -> str:
    return str(Path("runs") / f"{Path(data).resolve().name}-{datetime.now():%Y%m%d-%H%M%S}")


def versions() -> dict:
    import PIL
    import sklearn
    import tensorflow as tf

    return {"inceptune": __version__, "python": platform.python_version(), "keras": keras.__version__,
            "tensorflow": tf.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "scikit-learn": sklearn.__version__}


def say_results(run: RunFolder, metrics: dict) -> None:
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            console.info(f"{split}: accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f} ({m['images']} images)")
    console.info(f"Saved the model, report.html and plots in {run.path}/")
