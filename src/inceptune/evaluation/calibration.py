"""Calibration fitted on held-out predictions: one temperature for the probabilities, and a decision threshold per
label for multi-label answers.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T, fitted by minimising the log loss of
held-out predictions. The argmax cannot change, so accuracy stays as it is; a softmax (or sigmoid) of logits / T is
the same as dividing the output Dense layer's kernel and bias by T, which is how the saved model carries it
(models/classifier.py). The logits are recovered from the probabilities themselves (log p is a softmax's logits up
to a constant per row; log(p / (1 - p)) a sigmoid's), so fitting needs nothing but what the model answered.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, softmax
from sklearn.metrics import f1_score, log_loss

from inceptune.vocabulary.limits import THRESHOLD

TEMPERATURE_RANGE = (0.05, 20.0)  # searched on a log scale; the bounds are far beyond what a trained head needs
# A weak prior on log T (normal, this standard deviation), added to the summed log loss: a val split of a few
# images, or one the model answers all right, would otherwise drive T to a bound (all right: ever sharper is
# ever better). At 100 images the data outweigh it: a log-loss sum of tens against (log T)^2 / 0.5.
LOG_TEMPERATURE_PRIOR = 0.5
_TINY = 1e-12  # float32 softmax rows hold exact zeros for very confident answers


def logits_of(probs: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """Logits that give `probs` back: per-label sigmoid logits, or softmax logits up to a constant per row."""
    p = np.clip(np.asarray(probs, dtype=np.float64), _TINY, 1.0 - _TINY)
    return np.log(p) - np.log1p(-p) if multilabel else np.log(p)


def at_temperature(probs: np.ndarray, temperature: float, multilabel: bool = False) -> np.ndarray:
    """The probabilities a model answering `probs` answers once its logits are divided by `temperature`."""
    z = logits_of(probs, multilabel) / temperature
    return expit(z) if multilabel else softmax(z, axis=1)


def fit_temperature(probs: np.ndarray, y_true: np.ndarray, multilabel: bool = False) -> float:
    """The temperature that minimises the log loss of held-out `probs` (N, C) against class indices `y_true`
    (N,), or multi-hot rows (N, C) when `multilabel` (the binary log loss of every answer, per label), under
    the weak prior on log T."""
    y_true = np.asarray(y_true)

    def loss(log_t: float) -> float:
        p = at_temperature(probs, float(np.exp(log_t)), multilabel)
        prior = log_t ** 2 / (2 * LOG_TEMPERATURE_PRIOR ** 2)
        if multilabel:
            p = np.clip(p, _TINY, 1.0 - _TINY)
            return float(-np.sum(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)) / y_true.shape[1] + prior)
        return float(log_loss(y_true, p, labels=list(range(p.shape[1])), normalize=False) + prior)

    low, high = np.log(TEMPERATURE_RANGE)
    return float(np.exp(minimize_scalar(loss, bounds=(low, high), method="bounded",
                                        options={"xatol": 1e-4}).x))


def best_thresholds(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per label, the decision threshold that maximises that label's F1 on held-out multi-hot `y_true` and `probs`.

    A label keeps the default 0.5 unless another threshold scores a strictly higher F1 (ties, and labels the
    held-out rows have no positive of, stay at 0.5); candidates are midpoints between neighbouring probabilities,
    so a threshold never sits exactly on a held-out answer.
    """
    y_true, probs = np.asarray(y_true, dtype=int), np.asarray(probs, dtype=np.float64)
    thresholds = np.full(probs.shape[1], THRESHOLD)
    for j in range(probs.shape[1]):
        if not y_true[:, j].any():
            continue
        values = np.unique(probs[:, j])
        candidates = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
        best = f1_score(y_true[:, j], probs[:, j] >= THRESHOLD, zero_division=0)
        for t in candidates:
            score = f1_score(y_true[:, j], probs[:, j] >= t, zero_division=0)
            if score > best + 1e-12:
                best, thresholds[j] = score, float(t)
    return thresholds
