"""Small Keras callbacks the trainer composes: progress bars and best-weights keeping."""

from __future__ import annotations

import math

import keras
import numpy as np

from inceptune import console, hooks


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

    @property
    def best_weights(self) -> list | None:
        return self._best_weights

    def restore(self, best: float, best_epoch: int | None, weights: list) -> None:
        """Continue a resumed run from the best loss, epoch and weights it had found."""
        self.best, self.best_epoch, self._best_weights = best, best_epoch, weights

    def on_train_begin(self, logs=None):
        if self._best_weights is None:
            self._best_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and value < self.best:
            self.best, self.best_epoch = float(value), epoch
            self._best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        self.model.set_weights(self._best_weights)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter and best loss survive a resume."""

    def __init__(self, *args, restored: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._restored = restored

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored:
            self.wait, self.best = self._restored["wait"], self._restored["best"]

    def state(self) -> dict:
        return {"wait": int(self.wait), "best": float(self.best)}


class EpochSeeds(keras.callbacks.Callback):
    """Dropout and other random layers draw from a state set by (seed, epoch) at each epoch's start,
    so an epoch's randomness does not depend on what ran before it (a resumed run repeats it)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        layers = self.model._flatten_layers(include_self=False, recursive=True)
        for index, layer in enumerate(layers):
            # Dropout keeps its generator as `seed_generator`, the augmentation layers as `generator`.
            generators = [v for v in vars(layer).values() if isinstance(v, keras.random.SeedGenerator)]
            for g, generator in enumerate(generators):
                generator.state.assign(np.array([self.seed, (epoch * 1000 + index) * 8 + g],
                                                dtype=generator.state.dtype))


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, hand the trainer's state to `save(epoch_index, logs)` (training/checkpoint.py)."""

    def __init__(self, save):
        super().__init__()
        self.save = save

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch, logs or {})


class ValidateWith(keras.callbacks.Callback):
    """Validation by another model that shares the trained weights (phase 2 on images validates on
    cached activations); its results go into the epoch's logs as val_*, for the callbacks after it."""

    def __init__(self, evaluator: keras.Model, data):
        super().__init__()
        self.evaluator, self.data = evaluator, data

    def results(self) -> dict:
        return self.evaluator.evaluate(self.data, verbose=0, return_dict=True)

    def loss(self) -> float:
        return float(self.results()["loss"])

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({f"val_{k}": float(v) for k, v in self.results().items()})


class EpochHook(keras.callbacks.Callback):
    """Marks the end of every epoch for hooks (inceptune/hooks.py), after the callbacks before it ran."""

    def __init__(self, phase: str):
        super().__init__()
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        hooks.reached("epoch_end", phase=self.phase, epoch=epoch + 1)
