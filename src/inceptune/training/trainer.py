"""`train`: a folder of images in, a fine-tuned Inception-v3 classifier and its run folder out.

    files -> load_dataset -> extract_to_cache (one backbone pass per image)
          -> train_head (phase 1) -> fine_tune (phase 2) -> evaluate -> run folder
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
from inceptune.features.cache import FeatureCache, default_cache_dir
from inceptune.features.extract import POOLED, activations_kind, extract_to_cache
from inceptune.models.backbone import build_backbone, check_block, check_image_size
from inceptune.models.classifier import Classifier, build_classifier, class_probabilities
from inceptune.models.weights import resolve_weights
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
    unknown = set(settings) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown train settings: {', '.join(sorted(unknown))}")
    return Trainer(TrainConfig(data=str(data), **settings)).run()


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config

    def run(self) -> TrainResult:
        c = self.config
        check_image_size(c.image_size)
        if c.fine_tune_epochs > 0:
            check_block(c.unfreeze_from)
        dataset = load_dataset(c.data, c.val_split, c.test_split, c.seed, c.max_pixels)
        run = RunFolder.create(c.out or _default_out(c.data), overwrite=c.overwrite)
        console.info(f"Run folder: {run.path}")
        keras.utils.set_random_seed(c.seed)
        weights = resolve_weights(c.weights)
        console.info(f"Weights: {weights.describe()}")
        classifier = build_classifier(build_backbone(weights, c.image_size), len(dataset.classes),
                                      c.image_size, c.dropout, tuple(c.head_units))
        cache = FeatureCache(c.cache_dir or default_cache_dir(), {
            "backbone": "inception_v3",
            "weights": weights.fingerprint if weights.pretrained else f"random-seed-{c.seed}",
            "image_size": c.image_size,
            "resize": "bilinear-antialias",
        })

        # === Phase 1: one backbone pass per image (cached), then the head ===
        fine_tuning = c.fine_tune_epochs > 0
        kinds = [POOLED] + ([activations_kind(c.unfreeze_from)] if fine_tuning else [])
        start = time.perf_counter()
        extraction = extract_to_cache(dataset.records, cache, classifier.backbone, kinds, c.image_size, c.batch_size)
        console.info(f"Features: {extraction.images} images, {extraction.from_cache} from cache, "
                     f"{extraction.computed} computed ({extraction.seconds:.1f}s).")
        splits = _Splits(dataset, classifier, cache, c)
        history = train_head(classifier, splits.data("train", POOLED), splits.data("val", POOLED),
                             c.epochs, c.learning_rate)
        phase1_seconds = time.perf_counter() - start
        final_kind, final_model = POOLED, classifier.head_model()

        # === Phase 2: fine-tune the top blocks on cached activations ===
        phase2_seconds = 0.0
        if fine_tuning:
            start = time.perf_counter()
            kind = activations_kind(c.unfreeze_from)
            history += fine_tune(classifier, c.unfreeze_from, splits.data("train", kind), splits.data("val", kind),
                                 c.fine_tune_epochs, c.fine_tune_lr, c.patience)
            phase2_seconds = time.perf_counter() - start
            final_kind, final_model = kind, classifier.top_model(c.unfreeze_from)

        # === Evaluate and write the run folder ===
        evaluation = {split: splits.evaluate(final_model, split, final_kind) for split in ("val", "test")}
        metrics = {
            **evaluation,
            "phase1": {"seconds": round(phase1_seconds, 3), "features": extraction.as_dict()},
            "phase2": {"seconds": round(phase2_seconds, 3),
                       "epochs_run": sum(1 for h in history if h["phase"] == "fine-tune"),
                       "kept": any(h["kept"] for h in history if h["phase"] == "fine-tune")},
        }
        self._write(run, dataset, classifier, history, metrics, weights)
        _say_results(run, metrics)
        return TrainResult(run.path, metrics)

    def _write(self, run: RunFolder, dataset: Dataset, classifier: Classifier, history, metrics, weights) -> None:
        run.save_model(classifier.model)
        run.write_json("labels.json", {"classes": dataset.classes,
                                       "task": "binary" if classifier.binary else "multiclass"})
        run.write_json("config.json", {**self.config.as_dict(), "resolved_weights": weights.describe(),
                                       "weights_fingerprint": weights.fingerprint, "versions": _versions()})
        run.write_rows("history.csv", history)
        write_manifest(dataset, run.file("manifest.csv"))
        run.write_json("dataset.json", dataset.summary())
        run.write_json("metrics.json", metrics)  # last: its presence marks a finished run


class _Splits:
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

    def evaluate(self, model: keras.Model, split: str, kind: str) -> dict | None:
        data = self.data(split, kind)
        if data is None:
            return None
        probs = class_probabilities(model.predict(data, verbose=0))
        y = np.array([self.dataset.label_index(r) for r in self.dataset.split(split)])
        return {
            "images": int(len(y)),
            "accuracy": float(accuracy_score(y, probs.argmax(axis=1))),
            "loss": float(log_loss(y, probs, labels=list(range(len(self.dataset.classes))))),
        }


def _default_out(data: str) -> str:
    return str(Path("runs") / f"{Path(data).resolve().name}-{datetime.now():%Y%m%d-%H%M%S}")


def _versions() -> dict:
    import PIL
    import sklearn
    import tensorflow as tf

    return {"inceptune": __version__, "python": platform.python_version(), "keras": keras.__version__,
            "tensorflow": tf.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "scikit-learn": sklearn.__version__}


def _say_results(run: RunFolder, metrics: dict) -> None:
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            console.info(f"{split}: accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f} ({m['images']} images)")
    console.info(f"Saved the model and its report files in {run.path}/")
