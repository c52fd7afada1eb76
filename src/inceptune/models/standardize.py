"""The head's feature standardisation: centre each feature, divide by one overall standard deviation.

Per-feature scaling would blow up features that happen to be constant in a
small training split. The classifier's Normalization layer and the linear
head fitted by scikit-learn use the same numbers.
"""

from __future__ import annotations

import numpy as np


def standardization(features: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean per feature, one overall variance) of training features (N, D)."""
    features = np.asarray(features, dtype="float64")
    return features.mean(axis=0), max(float(features.var(axis=0).mean()), 1e-12)
