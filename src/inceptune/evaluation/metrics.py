"""Every number of an evaluation, from true labels and predicted probabilities.

scikit-learn computes them all; the only thing computed here is the expected
calibration error, which scikit-learn does not offer (its binning is the
standard one: equal-width confidence bins, weighted by their share of images).
Each scalar comes with its 95% interval ("ci95", from intervals.py).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    log_loss,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.preprocessing import label_binarize

from inceptune.evaluation.intervals import (
    Interval,
    classification_intervals,
    containing,
    fold_interval,
    wilson_interval,
)

CALIBRATION_BINS = 15

# Scalar metrics, in the order tables and reports show them.
SCALARS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1",
           "roc_auc", "average_precision", "log_loss", "ece")


def top_k_name(k: int | str) -> str:
    """The ci95 key of a top-k accuracy (metrics["top_k_accuracy"][str(k)]): "top_3_accuracy"."""
    return f"top_{k}_accuracy"


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Metrics of probabilities `probs` (N, C) against class indices `y_true` (N,).

    ROC AUC is binary for two classes and one-vs-rest (macro) for more;
    average precision likewise. Metrics that are undefined for the labels at
    hand (AUC when a class is absent) are None. "ci95" holds each scalar's 95%
    interval, [low, high] or None: every name of SCALARS, then "top_3_accuracy"
    and the like (top_k_name) for the top-k accuracies beyond top-1.
    """
    y_true = np.asarray(y_true, dtype=int)
    probs = as_probabilities(probs)
    labels = list(range(len(classes)))
    y_pred = probs.argmax(axis=1)
    report = classification_report(y_true, y_pred, labels=labels, target_names=classes, output_dict=True,
                                   zero_division=0)
    macro, weighted = report["macro avg"], report["weighted avg"]
    ece, bins = calibration(y_true, probs)
    metrics = {
        "images": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # The mean recall of the classes present (scikit-learn's balanced accuracy, told the labels, so that
        # an evaluation folder holding one class is not a warning).
        "balanced_accuracy": float(recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro",
                                                zero_division=0)),
        "macro_precision": float(macro["precision"]),
        "macro_recall": float(macro["recall"]),
        "macro_f1": float(macro["f1-score"]),
        "weighted_f1": float(weighted["f1-score"]),
        "roc_auc": _defined(lambda: _roc_auc(y_true, probs, labels)),
        "average_precision": _defined(lambda: _average_precision(y_true, probs, labels)),
        "log_loss": float(log_loss(y_true, probs, labels=labels)),
        "ece": ece,
        "top_k_accuracy": {str(k): float(top_k_accuracy_score(y_true, probs, k=k, labels=labels))
                           for k in range(1, min(5, len(classes) - 1) + 1)} if len(classes) > 2 else
                          {"1": float(accuracy_score(y_true, y_pred))},
        "per_class": {
            c: {
                "precision": float(report[c]["precision"]),
                "recall": float(report[c]["recall"]),
                "f1": float(report[c]["f1-score"]),
                "support": int(report[c]["support"]),
                "roc_auc": _defined(lambda i=i: roc_auc_score(y_true == i, probs[:, i])),
                "average_precision": _defined(lambda i=i: average_precision_score(y_true == i, probs[:, i])),
            }
            for i, c in enumerate(classes)
        },
        "macro_avg": {"precision": float(macro["precision"]), "recall": float(macro["recall"]),
                      "f1": float(macro["f1-score"]), "support": int(macro["support"])},
        "weighted_avg": {"precision": float(weighted["precision"]), "recall": float(weighted["recall"]),
                         "f1": float(weighted["f1-score"]), "support": int(weighted["support"])},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "calibration_bins": bins,
        "classes": list(classes),
    }
    metrics["ci95"] = _intervals(y_true, probs, metrics)
    return metrics


def _intervals(y_true: np.ndarray, probs: np.ndarray, metrics: dict) -> dict[str, Interval | None]:
    """ci95: each of SCALARS, then top_k_name(k) for k >= 2 -> [low, high], or None where the metric is None.

    Accuracy and top-k accuracy count images right: Wilson. The rest are bootstrapped over images.
    """
    images = len(y_true)
    proportions = {"accuracy": metrics["accuracy"],
                   **{top_k_name(k): v for k, v in metrics["top_k_accuracy"].items() if k != "1"}}
    ci = {name: containing(wilson_interval(round(value * images), images), value)
          for name, value in proportions.items()}
    ci.update(classification_intervals(y_true, probs, {name: metrics[name] for name in SCALARS if name != "accuracy"},
                                       ece_bins=calibration_bin(probs.max(axis=1))))
    return {name: ci[name] for name in (*SCALARS, *proportions)}


def as_probabilities(outputs) -> np.ndarray:
    """Float64 rows that sum to one (float32 softmax outputs miss by rounding, which log_loss warns about)."""
    probs = np.clip(np.asarray(outputs, dtype=np.float64), 0.0, None)
    return probs / probs.sum(axis=1, keepdims=True)


def calibration(y_true: np.ndarray, probs: np.ndarray, n_bins: int = CALIBRATION_BINS) -> tuple[float, list[dict]]:
    """Expected calibration error of the top-1 confidence, and the bins of its reliability diagram."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = calibration_bin(confidence, n_bins)
    ece, bins = 0.0, []
    for b in range(n_bins):
        mask = index == b
        if not mask.any():
            continue
        acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
        ece += mask.mean() * abs(acc - conf)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                     "accuracy": acc, "confidence": conf})
    return float(ece), bins


def calibration_bin(confidence: np.ndarray, n_bins: int = CALIBRATION_BINS) -> np.ndarray:
    """The reliability bin of each top-1 confidence: equal-width bins of [0, 1], a bin's upper edge inside it."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)


def _roc_auc(y_true, probs, labels) -> float:
    if len(labels) == 2:
        return roc_auc_score(y_true, probs[:, 1])
    return roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=labels)


def _average_precision(y_true, probs, labels) -> float:
    if len(labels) == 2:
        return average_precision_score(y_true, probs[:, 1])
    return average_precision_score(label_binarize(y_true, classes=labels), probs, average="macro")


def _defined(compute) -> float | None:
    """The metric, or None where the labels at hand leave it undefined (e.g. AUC with one class present).

    scikit-learn warns before it returns NaN for those; the None reports it, so the warning is not repeated.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
            warnings.filterwarnings("ignore", message="No positive class found in y_true")
            value = float(compute())
    except ValueError:
        return None
    return None if np.isnan(value) else value


def summarize_folds(folds: list[dict]) -> dict:
    """Mean, standard deviation and t interval of each scalar metric over cross-validation folds."""
    summary = {}
    for name in SCALARS:
        values = [f[name] for f in folds if f.get(name) is not None]
        if values:
            summary[name] = summarize_values(values)
    return summary


def summarize_values(values: list[float]) -> dict:
    """Mean, sample standard deviation, count and the 95% t interval of the mean (None for one fold)."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "folds": len(values), "ci95": fold_interval(values)}
