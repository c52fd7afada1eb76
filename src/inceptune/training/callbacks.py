"""Small Keras callbacks the trainer composes: progress bars and best-weights keeping."""

from __future__ import annotations

import math

import keras
import numpy as np

from inceptune import console


class ProgressBar(keras.callbacks.Callback):
    """One bar over all batches of a fit, with the latest epoch's metrics beside it."""

    def __init__(self, description: str, epochs: int, steps_per_epoch: int):
        super().__init__()
        self.description, self.total = description, epochs * steps_per_epoch
        self._context = None

    def on_train_begin(self, logs=None):
        self._context = console.progress(self.description, total=self.total)
        self._advance = self._context.__enter__()

    def on_train_batch_end(self, batch, logs=None):
        self._advance(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        short = {"loss": "loss", "val_loss": "val", "val_accuracy": "val acc"}
        note = " ".join(f"{name} {logs[k]:.3f}" for k, name in short.items() if k in logs)
        self._advance(0, note=f"epoch {epoch + 1} {note}")

    def on_train_end(self, logs=None):
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None


class KeepBest(keras.callbacks.Callback):
    """Restore, at the end of training, the weights of the epoch with the lowest monitored loss.

    `baseline` is the loss of the weights before training (e.g. after
    phase 1): if no epoch beats it, those weights come back.
    """

    def __init__(self, monitor: str = "val_loss", baseline: float = math.inf):
        super().__init__()
        self.monitor, self.best = monitor, baseline
        self.best_epoch: int | None = None  # None: the starting weights were best
        self._best_weights = None

    def on_train_begin(self, logs=None):
        self._best_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and value < self.best:
            self.best, self.best_epoch = float(value), epoch
            self._best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        self.model.set_weights(self._best_weights)
