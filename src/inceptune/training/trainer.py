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
from inceptune.models.classifier import Classifier, build_classifier, class_probabilities, refresh_normalization
from inceptune.models.weights import Weights, resolve_weights
from inceptune.runs import RunFolder
from inceptune.training.config import TrainConfig
from inceptune.training.data import CachedFeatures, ImageBatches
from inceptune.training.checkpoint import Checkpoint
from inceptune.training.phases import Resume, fine_tune, train_head
from inceptune.training.unfreezing import Unfreezing


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
    from inceptune.data.multilabel import is_multilabel_csv

    if is_array_source(config.data) and not is_multilabel_csv(config.data):
        config = arrays_as_folder(config)
    from inceptune.training.devices import training_devices

    with training_devices(config.precision, config.distribute) as devices:
        if devices["policy"] != "float32" or devices["replicas"] > 1:
            console.info(f"Devices: {devices['policy']} precision, {devices['replicas']} replica(s)"
                         + (f" ({devices['strategy']})" if devices["strategy"] else "") + ".")
        return Trainer(config).run()


def arrays_as_folder(config: TrainConfig) -> TrainConfig:
    """X.npy/y.npy, .npz or a FER-style CSV for the pretrained recipe: written once as PNG class folders."""
    from inceptune.data.arrays import load_arrays, materialize

    arrays = load_arrays(config.data, config.val_split, config.test_split, config.seed)
    folder = materialize(arrays, Path(config.cache_dir or default_cache_dir()).parent / "arrays")
    console.info(f"Arrays {config.data}: {len(arrays.images)} images of shape {arrays.images.shape[1:]}, "
                 f"as PNG files in {folder}" + (" (grayscale, expanded to RGB)" if arrays.images.shape[-1] == 1
                                               else ""))
    return dataclasses.replace(config, data=str(folder), array_source=config.data)


def make_config(data: str, settings: dict) -> TrainConfig:
    unknown = set(settings) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown train settings: {', '.join(sorted(unknown))}")
    config = TrainConfig(data=str(data), **settings)
    if config.unfreeze_top is not None:  # blocks mixed0..mixed10: the top N start at mixed(11 - N)
        if not 1 <= config.unfreeze_top <= 11:
            raise UserError(f"--unfreeze-top must be between 1 and 11 (inception blocks), got {config.unfreeze_top}.")
        config = dataclasses.replace(config, unfreeze_from=f"mixed{11 - config.unfreeze_top}")
    return config


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config

    def run(self) -> TrainResult:
        c = self.config
        check_settings(c)
        dataset = load_training_data(c)
        class_weights(c, dataset)  # a wrong --class-weight fails now, not after extraction
        if c.resume and not c.out:
            raise UserError("--resume needs --out: the run folder of the interrupted run.")
        run = RunFolder.create(c.out or default_out(c.array_source or c.data), overwrite=c.overwrite)
        console.info(f"Run folder: {run.path}")
        checkpoint = Checkpoint(run.path, c.as_dict())
        state = checkpoint.load() if c.resume else checkpoint.clear()
        if c.resume and state is None:
            console.warn(f"{run.path} has no checkpoint to resume from; starting from the beginning")
        source = None
        if c.from_model:
            from inceptune.models.source import load_source

            source = load_source(c.from_model, dataset.classes, Path(c.cache_dir or default_cache_dir()), c.unsafe)
            weights = source.weights
        else:
            weights = resolve_weights(c.weights)
        console.info(f"Weights: {weights.describe()}")
        classifier = new_classifier(weights, dataset, c)
        if source is not None and source.head is not None:
            keep_head(classifier, source.head)
        cache = feature_cache(c, weights)

        # === One backbone pass per image (and per augmented view), then both phases on cached data ===
        extraction = extract_features(dataset, cache, classifier, c)
        views = extract_views(dataset, cache, classifier, c)
        splits = SplitData(dataset, classifier, cache, c, views=views.records)
        fitted = fit_two_phases(classifier, splits, c, log_dir=run.file("tensorboard") if c.tensorboard else None,
                                resume=Resume(checkpoint, state, c.seed))

        # === Evaluate and write the run folder ===
        metrics = {
            **{split: splits.evaluate(fitted.model, split, fitted.kind) for split in ("val", "test")},
            "phase1": {"seconds": round(extraction.seconds + views.stats.seconds + fitted.phase1_seconds, 3),
                       "features": extraction.as_dict(), "augmentation": views.summary},
            "phase2": {"seconds": round(fitted.phase2_seconds, 3),
                       "epochs_run": sum(1 for h in fitted.history if h["phase"] == "fine-tune"),
                       "kept": any(h["kept"] for h in fitted.history if h["phase"] == "fine-tune"),
                       **fitted.phase2_data},
        }
        self._write(run, dataset, classifier, fitted, splits, metrics, weights)
        checkpoint.clear()
        say_results(run, metrics)
        if c.track:
            from inceptune.tracking import log_run

            log_run(run, c.track, c.tracking_uri)
        return TrainResult(run.path, metrics)

    def _write(self, run: RunFolder, dataset: Dataset, classifier: Classifier, fitted: "Fitted",
               splits: "SplitData", metrics: dict, weights: Weights) -> None:
        run.save_model(classifier.model)
        run.write_json("labels.json", {"classes": dataset.classes, "task": "multilabel" if classifier.multilabel
                                       else "binary" if classifier.binary else "multiclass"})
        run.write_json("config.json", {**self.config.as_dict(), "resolved_weights": weights.describe(),
                                       "weights_fingerprint": weights.fingerprint, "versions": versions()})
        run.write_rows("history.csv", fitted.history)
        write_manifest(dataset, run.file("manifest.csv"))
        run.write_json("dataset.json", dataset.summary())
        # The report: metrics and plots of the held-out split (test, else val), from the cached features.
        split = "test" if dataset.split("test") else "val" if dataset.split("val") else None
        if split and classifier.multilabel:
            from inceptune.evaluation.multilabel import write_multilabel_evaluation

            metrics["report"] = {"split": split}
            write_multilabel_evaluation(run.path, [r.path for r in dataset.split(split)], splits.labels(split),
                                        splits.probabilities(fitted.model, split, fitted.kind), dataset.classes,
                                        f"the {split} split")
        elif split:
            metrics["report"] = {"split": split}
            write_evaluation(run.path, dataset.split(split), dataset.classes,
                             splits.probabilities(fitted.model, split, fitted.kind),
                             folder=run, source=f"the {split} split")
        run.write_json("metrics.json", metrics)  # last: its presence marks a finished run


def load_training_data(c: TrainConfig) -> Dataset:
    """A folder of class folders, or a multi-label CSV of path,labels."""
    from inceptune.data.multilabel import is_multilabel_csv, load_multilabel_csv

    if is_multilabel_csv(c.data):
        return load_multilabel_csv(c.data, c.val_split, c.test_split, c.seed, c.max_pixels)
    return load_dataset(c.data, c.val_split, c.test_split, c.seed, c.max_pixels)


def check_settings(c: TrainConfig) -> None:
    """Settings that can be wrong on their own, checked before any image is read."""
    from inceptune.training.augment import resolve_policy
    from inceptune.training.schedules import learning_rate

    check_image_size(c.image_size)
    if c.fine_tune_epochs > 0:
        check_block(c.unfreeze_from)
    policy = resolve_policy(c.augment, c.aug)
    if c.views and not policy:
        raise UserError("--aug-views needs an augmentation: pass --augment light, default or strong.")
    if c.fine_tune_augment not in FINE_TUNE_AUGMENT:
        raise UserError(f"--fine-tune-augment must be one of {', '.join(FINE_TUNE_AUGMENT)}, got {c.fine_tune_augment}.")
    if c.fine_tune_augment == "online" and not policy:
        raise UserError("--fine-tune-augment online needs an augmentation: pass --augment light, default or strong.")
    if c.fine_tune_augment == "views" and not (c.views and policy):
        raise UserError("--fine-tune-augment views needs cached views: pass --augment with --aug-views K (K >= 1).")
    if c.unfreeze_every < 0:
        raise UserError(f"--unfreeze-every must be 0 (all blocks at once) or a number of epochs, got {c.unfreeze_every}.")
    if not 0 < c.block_lr_decay <= 1:
        raise UserError(f"--block-lr-decay must be in (0, 1] (1: the same rate for every block), got {c.block_lr_decay}.")
    learning_rate(c.learning_rate, c.schedule, c.epochs, 1, c.warmup_epochs)


FINE_TUNE_AUGMENT = ("auto", "online", "views", "none")


def new_classifier(weights: Weights, dataset: Dataset, c: TrainConfig) -> Classifier:
    """A fresh classifier (backbone weights loaded anew), seeded by the config."""
    keras.utils.set_random_seed(c.seed)
    classifier = build_classifier(build_backbone(weights, c.image_size), len(dataset.classes), c.image_size,
                                  c.dropout, tuple(c.head_units), multilabel=dataset.multilabel)
    classifier.label_smoothing = c.label_smoothing
    return classifier


def keep_head(classifier: Classifier, head: list[list]) -> None:
    """Start from a saved inceptune head (--from, same classes); a head of another shape is replaced."""
    layers = classifier.model.layers
    ours = layers[layers.index(classifier.backbone) + 1:]  # pooling, then the head
    if len(ours) != len(head) or any([w.shape for w in layer.get_weights()] != [w.shape for w in saved]
                                     for layer, saved in zip(ours, head)):
        console.warn("the saved head has another shape (--head-units?); training a new one")
        return
    for layer, saved in zip(ours, head):
        layer.set_weights(saved)
    refresh_normalization(classifier.model)
    classifier.adapted = True


def feature_cache(c: TrainConfig, weights: Weights) -> FeatureCache:
    space = feature_space(weights, c.image_size, c.seed)
    if c.precision != "float32":  # features computed in half precision are another space
        from inceptune.training.devices import precision_policy

        space["policy"] = precision_policy(c.precision)
    return FeatureCache(c.cache_dir or default_cache_dir(), space)


def feature_kinds(c: TrainConfig, views: bool = False) -> list[str]:
    """What one backbone pass must cache: pooled features, and the activations phase 2 starts from
    (for augmented views, only when phase 2 trains on them)."""
    phase2 = c.fine_tune_epochs > 0 and (not views or c.phase2_augment == "views")
    return [POOLED] + ([activations_kind(c.unfreeze_from)] if phase2 else [])


def extract_features(dataset: Dataset, cache: FeatureCache, classifier: Classifier,
                     c: TrainConfig) -> ExtractionStats:
    stats = extract_to_cache(dataset.records, cache, classifier.backbone, feature_kinds(c), c.image_size,
                             c.batch_size)
    console.info(f"Features: {stats.images} images, {stats.from_cache} from cache, "
                 f"{stats.computed} computed ({stats.seconds:.1f}s).")
    return stats


@dataclass
class Views:
    records: list[list]  # per view, the training records standing for that augmented view
    stats: ExtractionStats
    summary: dict | None


def extract_views(dataset: Dataset, cache: FeatureCache, classifier: Classifier, c: TrainConfig) -> Views:
    """Run the base once on each of K augmented views of every training image (cached like the images)."""
    from inceptune.training.augment import build_augmenter, resolve_policy, view_records

    params = resolve_policy(c.augment, c.aug)
    if not c.views or not params:
        return Views([], ExtractionStats(), None)
    train = dataset.split("train")
    records = view_records(train, params, c.views, c.seed)
    augmenter = build_augmenter(params, c.seed)
    total = ExtractionStats()
    for v, view in enumerate(records, 1):
        stats = extract_to_cache(view, cache, classifier.backbone, feature_kinds(c, views=True), c.image_size,
                                 c.batch_size,
                                 augment=augmenter, description=f"Augmented view {v}/{c.views}")
        total.images += stats.images
        total.from_cache += stats.from_cache
        total.computed += stats.computed
        total.seconds += stats.seconds
    passes = 1 + c.views
    console.info(f"Augmentation '{c.augment}' {params}: {c.views} views per training image; phase 1 runs the base "
                 f"{passes} times per training image (the image and its views, each once, cached), "
                 f"{total.computed} view passes computed now, {total.from_cache} from cache.")
    summary = {"policy": c.augment, "params": params, "views": c.views, "base_passes_per_train_image": passes,
               "view_passes_computed": total.computed, "view_passes_from_cache": total.from_cache}
    return Views(records, total, summary)


def class_weights(c: TrainConfig, dataset: Dataset) -> dict[int, float] | None:
    """--class-weight auto (inverse frequency, sklearn's 'balanced') or name=weight pairs, by class index."""
    if not c.class_weight:
        return None
    if dataset.multilabel:
        raise UserError("--class-weight is for single-label tasks; a multi-label task weighs each label's "
                        "yes/no answer equally.")
    classes = dataset.classes
    if c.class_weight == "auto":
        from sklearn.utils.class_weight import compute_class_weight

        y = np.array([dataset.label_index(r) for r in dataset.split("train")])
        present = np.unique(y)
        weights = compute_class_weight("balanced", classes=present, y=y)
        found = dict(zip(present.tolist(), weights.tolist()))
        return {i: round(found.get(i, 1.0), 6) for i in range(len(classes))}
    weights = {i: 1.0 for i in range(len(classes))}
    for item in c.class_weight.split(","):
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or name.strip() not in classes or weight <= 0:
            raise UserError(f"--class-weight takes auto or NAME=WEIGHT pairs (positive weights, classes "
                            f"{', '.join(classes)}), got '{item}'.")
        weights[classes.index(name.strip())] = weight
    return weights


@dataclass
class Fitted:
    history: list[dict]
    kind: str  # the cached feature kind the final model takes
    model: keras.Model  # cached features of `kind` -> probabilities (shares weights with classifier.model)
    phase1_seconds: float
    phase2_seconds: float
    phase2_data: dict  # what phase 2 trained on: augment, inputs, examples_per_epoch


def fit_two_phases(classifier: Classifier, splits: "SplitData", c: TrainConfig, log_dir: Path | None = None,
                   resume: Resume | None = None) -> Fitted:
    """Phase 1 (the head on pooled features), then phase 2 (fine-tuning from `c.unfreeze_from`).

    With `resume`, every finished epoch is checkpointed, and an interrupted run's finished epochs come back.
    """
    start = time.perf_counter()
    weights = class_weights(c, splits.dataset)
    if weights:
        console.info("Class weights: " + ", ".join(f"{splits.dataset.classes[i]} {w:.3g}" for i, w in weights.items()))
    if resume and resume.state and resume.state["phase"] == "fine-tune":
        history = resume.state["earlier_rows"]  # phase 1 finished before the interruption
        console.info(f"Resuming: phase 1 finished ({len(history)} epochs), not redone.")
    else:
        history = train_head(classifier, splits.data("train", POOLED), splits.data("val", POOLED), c.epochs,
                             c.learning_rate, log_dir=log_dir, class_weight=weights, resume=resume,
                             schedule=(c.schedule, c.warmup_epochs))
    if resume:
        resume.earlier_rows = history
    phase1 = time.perf_counter() - start
    kind, model, phase2, phase2_data = POOLED, classifier.head_model(), 0.0, {}
    if c.fine_tune_epochs > 0:
        start = time.perf_counter()
        kind = activations_kind(c.unfreeze_from)
        unfreezing = Unfreezing(classifier.backbone, c.unfreeze_from, c.unfreeze_every, c.block_lr_decay,
                                c.train_batchnorm)
        augment = phase2_augmenter(c)
        mode = "online" if augment is not None else "views" if c.phase2_augment == "views" else "none"
        train = splits.images("train") if mode == "online" else splits.data("train", kind, views=mode == "views")
        phase2_data = {"augment": mode, "inputs": "images" if mode == "online" else "cached activations",
                       "examples_per_epoch": len(train.records)}
        console.info(f"Fine-tuning: {unfreezing.describe()}; {PHASE2_INPUTS[mode]}.")
        history = history + fine_tune(classifier, unfreezing, train, splits.data("val", kind), c.fine_tune_epochs,
                                      c.fine_tune_lr, c.patience, log_dir=log_dir, class_weight=weights,
                                      resume=resume, schedule=(c.schedule, c.warmup_epochs), augment=augment)
        phase2 = time.perf_counter() - start
        model = classifier.top_model(c.unfreeze_from)
    return Fitted(history, kind, model, phase1, phase2, phase2_data)


PHASE2_INPUTS = {"online": "images augmented on the fly, the whole base each epoch",
                 "views": "on the cached activations of the images and their augmented views",
                 "none": "on cached activations"}


def phase2_augmenter(c: TrainConfig) -> keras.Model | None:
    """The random layers phase 2 puts before the base when it augments on the fly, else None."""
    from inceptune.training.augment import build_augmenter, resolve_policy

    if c.phase2_augment != "online":
        return None
    return build_augmenter(resolve_policy(c.augment, c.aug), c.seed + 100)


class SplitData:
    """Labels and cached-feature datasets per split; the training split includes its augmented views."""

    def __init__(self, dataset: Dataset, classifier: Classifier, cache: FeatureCache, config: TrainConfig,
                 views: list[list] | None = None):
        self.dataset, self.classifier, self.cache, self.config = dataset, classifier, cache, config
        self.views = views or []

    def labels(self, split: str) -> np.ndarray:
        if self.classifier.multilabel:  # multi-hot rows
            classes = self.dataset.classes
            return np.array([[float(c in self.dataset.labels_of(r)) for c in classes]
                             for r in self.dataset.split(split)], dtype="float32").reshape(-1, len(classes))
        y = np.array([self.dataset.label_index(r) for r in self.dataset.split(split)])
        if self.classifier.binary:
            return y.astype("float32").reshape(-1, 1)
        return np.eye(len(self.dataset.classes), dtype="float32")[y] if self.classifier.one_hot else y.astype("int32")

    def data(self, split: str, kind: str, views: bool = True) -> CachedFeatures | None:
        """The split's cached `kind` features; the training split includes its augmented views if `views`."""
        records = self.dataset.split(split)
        if not records:
            return None
        labels = self.labels(split)
        if split == "train" and self.views and views:
            records = records + [r for view in self.views for r in view]
            labels = np.concatenate([labels] * (1 + len(self.views)))
        return CachedFeatures(records, labels, self.cache, kind, self.config.batch_size,
                              shuffle=split == "train", seed=self.config.seed)

    def images(self, split: str) -> ImageBatches:
        """The split's images themselves, decoded batch by batch (phase 2 with on-the-fly augmentation)."""
        c = self.config
        return ImageBatches(self.dataset.split(split), self.labels(split), c.image_size, c.batch_size,
                            shuffle=split == "train", seed=c.seed, max_pixels=c.max_pixels)

    def probabilities(self, model: keras.Model, split: str, kind: str) -> np.ndarray:
        """(N, classes) probabilities of the split's images, in `dataset.split(split)` order."""
        return class_probabilities(model.predict(self.data(split, kind), verbose=0), self.classifier.multilabel)

    def evaluate(self, model: keras.Model, split: str, kind: str) -> dict | None:
        if not self.dataset.split(split):
            return None
        probs = self.probabilities(model, split, kind)
        if self.classifier.multilabel:
            from inceptune.evaluation.multilabel import multilabel_metrics

            m = multilabel_metrics(self.labels(split), probs, self.dataset.classes)
            return {"images": m["images"], "accuracy": m["subset_accuracy"], "loss": m["loss"],
                    "f1_macro": m["f1_macro"], "hamming_loss": m["hamming_loss"]}
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
