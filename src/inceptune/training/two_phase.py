"""The pretrained recipe on cached data: a fresh classifier, phase 1 (the head), phase 2 (fine-tuning).

`fit_two_phases` is what `train` runs once and `cv` once per fold, on the
same cached features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from inceptune import console
from inceptune.data.dataset import Dataset
from inceptune.engines.devices import Strategy
from inceptune.features.extract import activations_kind
from inceptune.vocabulary.sources import Source
from inceptune.vocabulary.inception import BLOCKS
from inceptune.models.backbone import build_backbone
from inceptune.models.classifier import Classifier, build_classifier, refresh_normalization
from inceptune.models.parts import model_parts
from inceptune.models.weights import Weights
from inceptune.settings import Settings
from inceptune.training.class_weights import class_weights
from inceptune.training.phases import Resume, fine_tune, train_head
from inceptune.training.splits import SplitData
from inceptune.training.unfreezing import Unfreezing

PHASE2_INPUTS = {"online": "images augmented on the fly, the whole base each epoch",
                 "views": "on the cached activations of the images and their augmented views",
                 "none": "on cached activations"}


def new_classifier(weights: Weights, dataset: Dataset, s: Settings) -> Classifier:
    """A fresh classifier (backbone weights loaded anew), seeded by the settings."""
    r = s.recipe
    keras.utils.set_random_seed(s.data.seed)
    if r.head == "linear" and dataset.multilabel:
        from inceptune.errors import UserError

        raise UserError("The linear head answers one class per image; a multi-label task needs --head dense.")
    classifier = build_classifier(build_backbone(weights, r.image_size), len(dataset.classes), r.image_size,
                                  r.dropout, tuple(r.head_units) if r.head == "dense" else (),
                                  multilabel=dataset.multilabel, block=r.feature_block, pooling=r.pooling)
    classifier.label_smoothing = r.label_smoothing
    return classifier


def keep_head(classifier: Classifier, head: list[list]) -> None:
    """Start from a saved inceptune head (--from, same classes); a head of another shape is replaced."""
    ours = model_parts(classifier.model).head
    if len(ours) != len(head) or any([w.shape for w in layer.get_weights()] != [w.shape for w in saved]
                                     for layer, saved in zip(ours, head)):
        console.warn("the saved head has another shape (--head-units?); training a new one")
        return
    for layer, saved in zip(ours, head):
        layer.set_weights(saved)
    refresh_normalization(classifier.model)
    classifier.adapted = True


@dataclass
class Fitted:
    history: list[dict]
    kind: str  # the cached feature kind the final model takes
    model: keras.Model  # cached features of `kind` -> probabilities (shares weights with classifier.model)
    phase1_seconds: float
    phase2_seconds: float
    phase2_data: dict  # what phase 2 trained on: augment, inputs, examples_per_epoch


def fit_two_phases(classifier: Classifier, splits: SplitData, s: Settings, log_dir: Path | None = None,
                   resume: Resume | None = None, strategy: Strategy = Strategy()) -> Fitted:
    """Phase 1 (the head on pooled features), then phase 2 (fine-tuning from `unfreeze_from`), each fitted
    under `strategy` (the run's devices, or its multi-worker cluster).

    With `resume`, every finished epoch is checkpointed, and an interrupted run's finished epochs come back.
    """
    r = s.recipe
    start = time.perf_counter()
    weights = class_weights(r.class_weight, splits.dataset)
    if weights:
        console.info("Class weights: " + ", ".join(f"{splits.dataset.classes[i]} {w:.3g}" for i, w in weights.items()))
    schedule = (r.schedule, r.warmup_epochs)
    source = Source(r.feature_block, r.pooling)
    if resume and resume.state and resume.state["phase"] == "fine-tune":
        history = resume.state["earlier_rows"]  # phase 1 finished before the interruption
        console.info(f"Resuming: phase 1 finished ({len(history)} epochs), not redone.")
    elif r.head == "linear":
        history = fit_linear_head(classifier, splits, source.kind, r.l2, weights)
    else:
        history = train_head(classifier, splits.data("train", source.kind), splits.data("val", source.kind),
                             r.epochs, r.learning_rate, log_dir=log_dir, class_weight=weights, resume=resume,
                             schedule=schedule, weight_decay=r.weight_decay, strategy=strategy)
    if resume:
        resume.earlier_rows = history
    phase1 = time.perf_counter() - start
    kind, model, phase2, phase2_data = source.kind, classifier.head_model(), 0.0, {}
    lowest = source.blocks[0]
    above = BLOCKS.index(r.unfreeze_from) > BLOCKS.index(lowest)
    if r.fine_tune_epochs > 0 and above:
        console.info(f"Fine-tuning skipped: the features come from {lowest}, below {r.unfreeze_from} "
                     "(--unfreeze-from), which fine-tuning would leave as they are.")
        phase2_data = {"skipped": f"features from {lowest}, below --unfreeze-from {r.unfreeze_from}"}
    if r.fine_tune_epochs > 0 and not above:
        start = time.perf_counter()
        kind = activations_kind(r.unfreeze_from)
        unfreezing = Unfreezing(classifier.backbone, r.unfreeze_from, r.unfreeze_every, r.block_lr_decay,
                                r.train_batchnorm)
        augment = phase2_augmenter(s)
        mode = "online" if augment is not None else "views" if r.phase2_augment == "views" else "none"
        train = splits.images("train") if mode == "online" else splits.data("train", kind, views=mode == "views")
        phase2_data = {"augment": mode, "inputs": "images" if mode == "online" else "cached activations",
                       "examples_per_epoch": len(train.records)}
        console.info(f"Fine-tuning: {unfreezing.describe()}; {PHASE2_INPUTS[mode]}.")
        history = history + fine_tune(classifier, unfreezing, train, splits.data("val", kind), r.fine_tune_epochs,
                                      r.fine_tune_lr, r.patience, log_dir=log_dir, class_weight=weights,
                                      resume=resume, schedule=schedule, augment=augment, strategy=strategy)
        phase2 = time.perf_counter() - start
        model = classifier.top_model(r.unfreeze_from)
    return Fitted(history, kind, model, phase1, phase2, phase2_data)


def fit_linear_head(classifier: Classifier, splits: SplitData, kind: str, l2: float,
                    class_weight: dict[int, float] | None) -> list[dict]:
    """Phase 1 with the linear head: the logistic regression fitted exactly, its weights put into the
    classifier's standardisation and output layers. One history row (no epochs to run)."""
    from sklearn.metrics import accuracy_score, log_loss

    from inceptune.models.classifier import set_standardization
    from inceptune.search.heads import fit_linear

    start = time.perf_counter()
    train = splits.data("train", kind)  # with the augmented views, when there are any
    y = _class_indices(train.labels)
    head = fit_linear(train.features(), y, len(splits.dataset.classes), l2, class_weight)
    norm, *_, output = classifier.head
    set_standardization(norm, head.mean, head.variance)
    output.set_weights([head.kernel.astype("float32"), head.bias.astype("float32")])
    classifier.adapted = True
    labels = list(range(len(splits.dataset.classes)))
    row = {"phase": "head", "epoch": 1}
    for split, prefix in (("train", ""), ("val", "val_")):
        data = splits.data(split, kind)
        if data is None:
            continue
        p = head.predict_proba(data.features())
        row.update({f"{prefix}loss": float(log_loss(_class_indices(data.labels), p, labels=labels)),
                    f"{prefix}accuracy": float(accuracy_score(_class_indices(data.labels), p.argmax(axis=1)))})
    row.update({"learning_rate": None, "seconds": round(time.perf_counter() - start, 3), "kept": True})
    console.info(f"Linear head (l2 {l2:g}): train accuracy {row['accuracy']:.4f}"
                 + (f", val accuracy {row['val_accuracy']:.4f}" if "val_accuracy" in row else "") + ".")
    return [row]


def _class_indices(labels: np.ndarray) -> np.ndarray:
    """Training labels (class indices, one-hot rows, or (N, 1) 0/1 for two classes) as class indices."""
    labels = np.asarray(labels)
    return labels.argmax(axis=1) if labels.ndim == 2 and labels.shape[1] > 1 else labels.reshape(-1).astype(int)


def phase2_augmenter(s: Settings) -> keras.Model | None:
    """The random layers phase 2 puts before the base when it augments on the fly, else None."""
    from inceptune.training.augment import build_augmenter
    from inceptune.vocabulary.policies import resolve_policy

    if s.recipe.phase2_augment != "online":
        return None
    return build_augmenter(resolve_policy(s.recipe.augment, s.recipe.aug), s.data.seed + 100)
