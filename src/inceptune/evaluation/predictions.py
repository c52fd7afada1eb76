"""predictions.csv: one row per image, its true label, the predicted class and every class's probability."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from inceptune.atomic import atomic_write_text
from inceptune.data.scan import ImageRecord


def write_predictions(path: Path, records: list[ImageRecord], classes: list[str], probs: np.ndarray,
                      folds: np.ndarray | None = None) -> None:
    """path, label, [fold,] predicted, p_CLASS... (cv adds the fold that held each image out)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", *(["fold"] if folds is not None else []), "predicted",
                     *[f"p_{c}" for c in classes]])
    for i, (r, p) in enumerate(zip(records, probs)):
        writer.writerow([r.path, r.label, *([int(folds[i])] if folds is not None else []),
                         classes[int(np.argmax(p))], *(repr(float(v)) for v in p)])
    atomic_write_text(path, buffer.getvalue())


def read_predictions(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """(paths, true labels, probabilities) from a predictions.csv."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [k for k in rows[0] if k.startswith("p_")] if rows else []
    return [r["path"] for r in rows], [r["label"] for r in rows], np.array([[float(r[c]) for c in columns]
                                                                             for r in rows])
