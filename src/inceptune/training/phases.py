"""The recipe's two phases, each a small Keras fit on cached data.

Phase 1 trains the new head on pooled features of the frozen base. Phase 2
unfreezes the backbone from a named block and fine-tunes it, with the head,
on the cached activations that enter that block: with BatchNorm frozen and
no augmentation this is exactly fine-tuning on the images, without running
the frozen part of the network again. Both phases keep the weights of their
best validation epoch; phase 2 keeps phase 1's weights if it never beats them.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras

from inceptune.models.backbone import freeze
from inceptune.models.classifier import Classifier
from inceptune.training.callbacks import KeepBest, ProgressBar
from inceptune.features.extract import read_features
from inceptune.training.data import CachedFeatures


def train_head(classifier: Classifier, train: CachedFeatures, val: CachedFeatures | None,
               epochs: int, learning_rate: float, log_dir: Path | None = None,
               class_weight: dict[int, float] | None = None) -> list[dict]:
    """Phase 1: standardise pooled features, then fit the head alone on them (in memory when they fit)."""
    freeze(classifier.backbone, None)
    arrays = train.arrays_if_small()
    if not classifier.adapted:
        classifier.adapt(arrays[0] if isinstance(arrays, tuple) else read_features(train.records, train.cache,
                                                                                   train.kind))
    return _fit("head", classifier.head_model(), train, val, epochs, learning_rate, classifier, train_arrays=arrays,
                log_dir=log_dir, class_weight=class_weight)


def fine_tune(classifier: Classifier, unfreeze_from: str, train: CachedFeatures, val: CachedFeatures | None,
              epochs: int, learning_rate: float, patience: int, log_dir: Path | None = None,
              class_weight: dict[int, float] | None = None) -> list[dict]:
    """Phase 2: fine-tune the blocks from `unfreeze_from` on, with the head, at a low learning rate."""
    freeze(classifier.backbone, unfreeze_from)
    model = classifier.top_model(unfreeze_from)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss" if val else "loss", patience=patience)
    return _fit("fine-tune", model, train, val, epochs, learning_rate, classifier, extra=[stop], log_dir=log_dir,
                class_weight=class_weight)


def _fit(phase: str, model: keras.Model, train: CachedFeatures, val: CachedFeatures | None, epochs: int,
         learning_rate: float, classifier: Classifier, extra: list | None = None,
         train_arrays=None, log_dir: Path | None = None, class_weight: dict[int, float] | None = None) -> list[dict]:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=classifier.loss(),
                  metrics=classifier.metrics())
    steps, batch_size = len(train), train.batch_size
    if train_arrays is not None:  # Keras fits arrays with far less per-batch overhead than a PyDataset
        train, val = train_arrays, val.arrays_if_small() if val else None
    monitor = "val_loss" if val else "loss"
    if phase == "head":
        baseline = float("inf")
    else:  # the loss of the weights this phase starts from: phase 1's result
        baseline = model.evaluate(*_xy(val if val else train), verbose=0, return_dict=True)["loss"]
    keep, timer = KeepBest(monitor, baseline), _EpochTimer()
    x, y = _xy(train)
    if log_dir is not None:  # TensorBoard: `tensorboard --logdir RUN/tensorboard`
        extra = [*(extra or []), keras.callbacks.TensorBoard(str(Path(log_dir) / phase), write_graph=False)]
    history = model.fit(
        x, y, batch_size=None if y is None else batch_size, shuffle=True,
        validation_data=val, epochs=epochs, verbose=0, class_weight=class_weight,
        callbacks=[ProgressBar(phase.capitalize(), epochs, steps), keep, timer, *(extra or [])],
    )
    rows = []
    for epoch in range(len(history.epoch)):
        row = {"phase": phase, "epoch": epoch + 1}
        row.update({k: float(v[epoch]) for k, v in history.history.items()})
        row["learning_rate"] = learning_rate
        row["seconds"] = round(timer.seconds[epoch], 3)
        row["kept"] = keep.best_epoch == epoch
        rows.append(row)
    return rows


def _xy(data):
    """Keras fit/evaluate arguments for a PyDataset or an (x, y) pair."""
    return (data, None) if isinstance(data, CachedFeatures) else data


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
