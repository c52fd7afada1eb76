""""None of these": an out-of-distribution score inside the saved model, as its second output.

The score is the cosine distance from an image's pooled features (the head's input) to the nearest training
image's: 1 - max_j cos(f, f_j), the k = 1 case of the nearest-neighbour detector of Sun et al. (2022, "Out-of-
distribution detection with deep nearest neighbors"), which needs no training and no assumption about the
features' distribution. It is made of built-in Keras layers only (unit normalisation, a Dense layer whose kernel
holds the unit-normalised training features, a max), so model.keras still loads with plain Keras, and every
exporter converts it with the rest of the model: exports answer it too, parity-checked.

A model with the branch answers [probabilities, ood_score]; one without (older runs, networks from scratch) answers
the probabilities alone. `split_outputs` reads either.
"""

from __future__ import annotations

import keras
import numpy as np

BANK_LIMIT = 10_000  # training images whose features the model holds; a larger set is subsampled per class
NAME = "ood"


def ood_branch(bank: np.ndarray) -> keras.Model:
    """Pooled features (N, D) -> (N, 1) cosine distance to the nearest row of `bank` (training features)."""
    bank = np.asarray(bank, np.float64)
    unit = bank / np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
    inputs = keras.Input((bank.shape[1],), name="pooled_features")
    x = keras.layers.UnitNormalization(name="ood_unit", dtype="float32")(inputs)
    nearest = keras.layers.Dense(len(bank), use_bias=False, name="ood_similarity", dtype="float32")
    x = nearest(x)
    nearest.set_weights([unit.T.astype("float32")])
    x = keras.layers.Reshape((len(bank), 1), name="ood_rows", dtype="float32")(x)
    x = keras.layers.GlobalMaxPooling1D(name="ood_nearest", dtype="float32")(x)
    score = keras.layers.Rescaling(-1.0, offset=1.0, name="ood_score", dtype="float32")(x)
    return keras.Model(inputs, score, name=NAME)


def bank_rows(labels: np.ndarray, limit: int = BANK_LIMIT, seed: int = 0) -> np.ndarray:
    """Indices of at most `limit` training images, the same share of each class, in order."""
    labels = np.asarray(labels)
    if len(labels) <= limit:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        keep.append(rng.choice(rows, size=max(1, round(limit * len(rows) / len(labels))), replace=False))
    return np.sort(np.concatenate(keep))


def split_outputs(outputs) -> tuple[np.ndarray, np.ndarray | None]:
    """A model's answers as (probability outputs, OOD scores (N,) or None)."""
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        return np.asarray(outputs[0]), (np.asarray(outputs[1]).reshape(-1) if len(outputs) > 1 else None)
    return np.asarray(outputs), None
