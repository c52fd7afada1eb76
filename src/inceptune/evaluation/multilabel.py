"""Metrics of a multi-label classifier: one yes/no answer per label (probability >= threshold), all from scikit-learn.

Per label: precision, recall, F1, support, ROC AUC and average precision
(null where the split has only one answer for that label). Overall: subset
accuracy (every label right), Hamming loss, micro and macro F1, and the
label-ranking average precision.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from inceptune.atomic import atomic_write_json, atomic_write_text
from inceptune.evaluation.intervals import multilabel_intervals
from inceptune.vocabulary.limits import THRESHOLD


def multilabel_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                       thresholds: float | np.ndarray = THRESHOLD) -> dict:
    """The metrics of multi-hot `y_true` against `probs`, each label answered yes at or above its threshold
    (one for all, or one per label)."""
    y_true, probs = np.asarray(y_true, int), np.asarray(probs, float)
    thresholds = np.broadcast_to(np.asarray(thresholds, float), (len(classes),))
    y_pred = (probs >= thresholds).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, average=None,
                                                                     labels=list(range(len(classes))),
                                                                     zero_division=0)
    per_label = {}
    for i, name in enumerate(classes):
        both = 0 < y_true[:, i].sum() < len(y_true)
        per_label[name] = {
            "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(support[i]),
            "roc_auc": float(roc_auc_score(y_true[:, i], probs[:, i])) if both else None,
            "average_precision": float(average_precision_score(y_true[:, i], probs[:, i])) if both else None,
        }
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    metrics = {
        "task": "multilabel", "images": int(len(y_true)),
        "thresholds": {c: float(t) for c, t in zip(classes, thresholds)},
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "label_ranking_average_precision": float(label_ranking_average_precision_score(y_true, probs))
        if y_true.sum() else None,
        "loss": float(np.mean([log_loss(y_true[:, i], clipped[:, i], labels=[0, 1]) for i in range(len(classes))])),
        "per_label": per_label,
    }
    metrics["ci95"] = multilabel_intervals(y_true, probs, thresholds, values=metrics)
    return metrics


def write_multilabel_evaluation(folder: Path, paths: list[str], y_true: np.ndarray, probs: np.ndarray,
                                classes: list[str], source: str, thresholds: np.ndarray | None = None) -> dict:
    """evaluation.json and predictions.csv (true and predicted label sets, every probability), each label
    decided at its threshold (labels.json's; 0.5 where the run has none)."""
    thresholds = np.full(len(classes), THRESHOLD) if thresholds is None else np.asarray(thresholds, float)
    metrics = {**multilabel_metrics(y_true, probs, classes, thresholds), "source": source}
    if np.any(thresholds != THRESHOLD):  # what the chosen thresholds changed
        plain = multilabel_metrics(y_true, probs, classes)
        metrics["at_0.5"] = {k: plain[k] for k in ("subset_accuracy", "hamming_loss", "f1_micro", "f1_macro")}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "labels", "predicted", *classes])
    for path, truth, p in zip(paths, y_true, probs):
        writer.writerow([path, "|".join(c for c, t in zip(classes, truth) if t),
                         "|".join(c for c, q, t in zip(classes, p, thresholds) if q >= t), *[f"{q:.6f}" for q in p]])
    atomic_write_text(Path(folder) / "predictions.csv", buffer.getvalue())
    atomic_write_json(Path(folder) / "evaluation.json", metrics)
    return metrics
