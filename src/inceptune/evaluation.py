"""`evaluate`: a trained run on its held-out test split, or on another folder of the same classes.

Runs the saved model on the images themselves (not on cached features), so
it measures exactly what `predict` and a plain-Keras user get.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, classification_report, confusion_matrix, log_loss

from inceptune import console
from inceptune.data.dataset import read_manifest
from inceptune.data.scan import scan_dataset
from inceptune.errors import UserError
from inceptune.inference.predict import predict
from inceptune.runs import RunFolder


def evaluate(run: str, data: str | None = None, split: str = "test", batch_size: int = 32) -> dict:
    """Metrics of a run's model on labelled images (scikit-learn computes them).

    Args:
        run: a run folder written by `train`.
        data: a folder of class subfolders; default: the run's own `split`.
        split: which split of the run's manifest to use when `data` is None.
    """
    folder = RunFolder.open(run)
    classes = folder.classes
    if data is None:
        records = [r for r in read_manifest(folder.file("manifest.csv")) if r.split == split]
        if not records:
            raise UserError(f"The run {run} has no {split} split; pass a folder of labelled images to evaluate on.")
        source = f"{run} ({split} split)"
    else:
        records = scan_dataset(data).records
        unknown = sorted({r.label for r in records} - set(classes))
        if unknown:
            raise UserError(f"{data} has class '{unknown[0]}', which the model does not know (it knows {', '.join(classes)}).")
        missing = sorted(set(classes) - {r.label for r in records})
        if missing:
            console.warn(f"{data} has no images of class {', '.join(missing)}")
        source = data
    results = predict(run, [r.path for r in records], top=1, batch_size=batch_size)
    kept = [(r, p) for r, p in zip(records, results) if "error" not in p]
    y_true = np.array([classes.index(r.label) for r, _ in kept])
    probs = np.array([[p["probabilities"][c] for c in classes] for _, p in kept])
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    report = classification_report(y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0)
    metrics = {
        "source": source,
        "images": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "log_loss": float(log_loss(y_true, probs, labels=labels)),
        "per_class": {c: {k: float(v) for k, v in report[c].items()} for c in classes},
        "macro_avg": {k: float(v) for k, v in report["macro avg"].items()},
        "weighted_avg": {k: float(v) for k, v in report["weighted avg"].items()},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": classes,
    }
    return metrics
