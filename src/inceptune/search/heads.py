"""Heads fitted on cached features, and their cross-validated score.

    fit_linear       the linear head: an L2-penalised logistic regression, fitted exactly (scikit-learn, L-BFGS);
                     its weights go straight into the classifier's Dense layer
    fit_dense        the Keras head (dropout, optional hidden layer, Adam or AdamW) on arrays
    cross_validate   a head recipe scored on stratified, group-aware folds: accuracy and log loss

Keras is imported only for the dense head.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from inceptune.models.standardize import standardization

LINEAR_MAX_ITER = 300


@dataclass
class LinearHead:
    mean: np.ndarray  # (D,)
    variance: float
    kernel: np.ndarray  # (D, 1) for two classes (a sigmoid), else (D, K) (a softmax)
    bias: np.ndarray

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = ((np.asarray(features, "float64") - self.mean) / np.sqrt(self.variance)) @ self.kernel + self.bias
        if z.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-z))
            return np.concatenate([1.0 - p, p], axis=1)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fit_linear(features: np.ndarray, y: np.ndarray, num_classes: int, l2: float = 1.0,
               class_weight: dict[int, float] | None = None) -> LinearHead:
    """Multinomial (two classes: binary) logistic regression on standardised features, penalty l2 = 1 / C."""
    mean, variance = standardization(features)
    x = (np.asarray(features, "float64") - mean) / np.sqrt(variance)
    present = np.unique(y)
    if len(present) == 1:  # one class to learn from: always that class
        kernel = np.zeros((x.shape[1], 1 if num_classes == 2 else num_classes))
        if num_classes == 2:
            return LinearHead(mean, variance, kernel, np.array([20.0 if present[0] == 1 else -20.0]))
        bias = np.full(num_classes, -30.0)
        bias[present[0]] = 0.0
        return LinearHead(mean, variance, kernel, bias)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # L-BFGS stopping at max_iter is still a usable fit
        model = LogisticRegression(C=1.0 / l2, max_iter=LINEAR_MAX_ITER, class_weight=class_weight).fit(x, y)
    if num_classes == 2:
        return LinearHead(mean, variance, model.coef_.T.copy(), model.intercept_.copy())
    kernel, bias = np.zeros((x.shape[1], num_classes)), np.full(num_classes, -30.0)  # absent classes: never
    kernel[:, model.classes_] = model.coef_.T
    bias[model.classes_] = model.intercept_
    return LinearHead(mean, variance, kernel, bias)


@dataclass(frozen=True)
class DenseRecipe:
    hidden_units: int = 0
    dropout: float = 0.2
    learning_rate: float = 1e-3
    epochs: int = 20
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 32


def fit_dense(features: np.ndarray, y: np.ndarray, num_classes: int, recipe: DenseRecipe,
              class_weight: dict[int, float] | None = None, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """The Keras head trained on arrays for a fixed number of epochs; returns features -> probabilities."""
    import keras

    from inceptune.models.classifier import class_probabilities, head_layers, head_loss, set_standardization

    keras.utils.set_random_seed(seed)
    mean, variance = standardization(features)
    layers = head_layers(num_classes, recipe.dropout, (recipe.hidden_units,) if recipe.hidden_units else ())
    model = keras.Sequential([keras.Input((features.shape[1],)), *layers])
    set_standardization(layers[0], mean, variance)
    optimizer = (keras.optimizers.AdamW(recipe.learning_rate, weight_decay=recipe.weight_decay)
                 if recipe.weight_decay > 0 else keras.optimizers.Adam(recipe.learning_rate))
    loss, one_hot = head_loss(num_classes, recipe.label_smoothing)
    targets = (np.eye(num_classes, dtype="float32")[y] if one_hot
               else y.astype("float32").reshape(-1, 1) if num_classes == 2 else y)
    model.compile(optimizer=optimizer, loss=loss, steps_per_execution=16)
    # Every epoch in one fit call over a reshuffled, repeated tf.data stream: Keras' per-epoch overhead
    # (tenths of a second) would otherwise cost more than a head's whole training.
    import tensorflow as tf

    weights = np.ones(len(y), "float32") if not class_weight else np.array([class_weight[int(c)] for c in y], "float32")
    stream = (tf.data.Dataset.from_tensor_slices((features.astype("float32"), targets, weights))
              .shuffle(len(y), seed=seed, reshuffle_each_iteration=True).batch(recipe.batch_size)
              .repeat(recipe.epochs))
    model.fit(stream, epochs=1, verbose=0, shuffle=False)  # the stream shuffles itself, by the seed
    return lambda x: class_probabilities(model.predict_on_batch(np.asarray(x, "float32")))


@dataclass
class Score:
    accuracy: float  # mean over folds
    log_loss: float
    per_fold: list[float]  # accuracy of each fold

    def as_dict(self) -> dict:
        return {"accuracy": round(self.accuracy, 6), "log_loss": round(self.log_loss, 6),
                "per_fold": [round(a, 6) for a in self.per_fold]}


def cross_validate(fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]],
                   features: np.ndarray, y: np.ndarray, folds: np.ndarray, num_classes: int,
                   report: Callable[[int, float], None] | None = None) -> Score:
    """Score `fit` (train features, labels -> probability function) on each fold held out in turn.

    `folds[i]` is the fold that holds image i out. `report(step, mean accuracy so far)` is called after each
    fold (Optuna's pruner listens there and may raise to stop).
    """
    accuracies, losses = [], []
    for k in range(int(folds.max()) + 1):
        held = folds == k
        predict = fit(features[~held], y[~held])
        p = np.clip(predict(features[held]), 1e-7, 1.0)
        accuracies.append(float(accuracy_score(y[held], p.argmax(axis=1))))
        losses.append(float(log_loss(y[held], p / p.sum(axis=1, keepdims=True), labels=list(range(num_classes)))))
        if report is not None:
            report(k, float(np.mean(accuracies)))
    return Score(float(np.mean(accuracies)), float(np.mean(losses)), accuracies)
