"""`evaluate`: a trained run on its held-out test split, or on another folder of the same classes.

    records -> predict (the saved model on the images, optional TTA)
            -> classification_metrics -> predictions.csv, evaluation.json,
               PNG plots, report.html

Runs the saved model on the images themselves (not on cached features), so
it measures exactly what `predict` and a plain-Keras user get. `train` calls
`write_evaluation` with the same inputs at its end.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.atomic import atomic_write_json, atomic_write_text
from inceptune.data.dataset import read_manifest
from inceptune.data.scan import ImageRecord, scan_dataset
from inceptune.errors import UserError
from inceptune.evaluation import plots
from inceptune.evaluation.metrics import classification_metrics
from inceptune.evaluation.report import write_report
from inceptune.inference.predict import predict
from inceptune.runs import RunFolder

GALLERY_SIZE = 12


def evaluate(run: str, data: str | None = None, split: str = "test", batch_size: int = 32, tta: int = 1,
             unsafe: bool = False) -> dict:
    """Metrics of a run's model on labelled images (scikit-learn computes them), with plots and a report.

    Args:
        run: a run folder written by `train`.
        data: a folder of class subfolders; default: the run's own `split`.
        split: which split of the run's manifest to use when `data` is None.
        tta: average predictions over this many deterministic views (1 = none).

    On the run's own test split, the files go to the run folder itself (its
    `report.html` included); on another folder, to `RUN/evaluations/NAME/`.

    Examples:
        >>> m = inceptune.evaluate("runs/flowers")
        >>> m["accuracy"], m["roc_auc"], m["confusion_matrix"]
    """
    folder = RunFolder.open(run)
    classes = folder.classes
    if folder.read_json("labels.json").get("task") == "multilabel":
        raise UserError(f"The run {run} is multi-label: its per-label test metrics are in evaluation.json, written "
                        "by train; evaluate covers single-label runs.")
    if data is None:
        if folder.config.get("data_kind") == "arrays":
            raise UserError(f"The run {run} was trained on arrays, whose {split} metrics are in its report.html; "
                            "pass a folder of labelled images to evaluate on.")
        records = [r for r in read_manifest(folder.file("manifest.csv")) if r.split == split]
        if not records:
            raise UserError(f"The run {run} has no {split} split; pass a folder of labelled images to evaluate on.")
        source, target = f"{run} ({split} split)", folder.path
    else:
        records = _labelled_records(data, classes)
        source, target = data, folder.path / "evaluations" / Path(data).resolve().name
    results = predict(run, [r.path for r in records], top=1, batch_size=batch_size, tta=tta, unsafe=unsafe)
    kept = [(r, p) for r, p in zip(records, results) if "error" not in p]
    if not kept:
        raise UserError(f"None of the images in {source} could be read.")
    probs = np.array([[p["probabilities"][c] for c in classes] for _, p in kept])
    return write_evaluation(target, [r for r, _ in kept], classes, probs, folder=folder, source=source,
                            extra={"tta": tta, "unreadable": [p["path"] for p in results if "error" in p]})


def _labelled_records(data: str, classes: list[str]) -> list[ImageRecord]:
    records = scan_dataset(data, min_classes=1).records  # evaluating on some of the classes is fine
    unknown = sorted({r.label for r in records} - set(classes))
    if unknown:
        raise UserError(f"{data} has class '{unknown[0]}', which the model does not know (it knows {', '.join(classes)}).")
    missing = sorted(set(classes) - {r.label for r in records})
    if missing:
        console.warn(f"{data} has no images of class {', '.join(missing)}")
    return records


def write_evaluation(target: Path, records: list[ImageRecord], classes: list[str], probs: np.ndarray, *,
                     folder: RunFolder, source: str, extra: dict | None = None,
                     images: np.ndarray | None = None) -> dict:
    """Metrics, predictions.csv, evaluation.json, the plots and report.html for predictions `probs` of `records`."""
    target = Path(target)
    y_true = np.array([classes.index(r.label) for r in records])
    metrics = {"source": source, **classification_metrics(y_true, probs, classes), **(extra or {}),
               "report": str(target / "report.html")}
    _write_predictions(target / "predictions.csv", records, classes, probs)
    figures = _draw(target, folder, records, classes, y_true, probs, metrics, images)
    atomic_write_json(target / "evaluation.json", metrics)
    write_report(target / "report.html", f"inceptune run {folder.path.name}", figures=figures, metrics=metrics,
                 dataset=_read_optional(folder, "dataset.json"), settings=_read_optional(folder, "config.json"),
                 source=source)
    return metrics


def _draw(target: Path, folder: RunFolder, records, classes, y_true, probs, metrics,
          images) -> list[tuple[Path, str]]:
    figures = []
    if folder.file("history.csv").is_file():
        history = _read_history(folder.file("history.csv"))
        if history:
            figures.append((plots.training_curves(history, target / "training_curves.png"),
                            "Training curves: phase 1 (head), then fine-tuning"))
    figures += [
        (plots.confusion_matrices(metrics["confusion_matrix"], classes, target / "confusion_matrix.png"),
         "Confusion matrix (rows: true class)"),
        (plots.roc_curves(y_true, probs, classes, target / "roc_curve.png"), "ROC curves"),
        (plots.precision_recall_curves(y_true, probs, classes, target / "precision_recall_curve.png"),
         "Precision-recall curves"),
        (plots.reliability_diagram(metrics["calibration_bins"], metrics["ece"], target / "reliability_diagram.png"),
         "Reliability diagram"),
        (plots.error_gallery(_confident_errors(records, classes, y_true, probs, images), target / "errors.png"),
         "Most confidently wrong images"),
    ]
    return figures


def _confident_errors(records, classes, y_true, probs, images=None) -> list[dict]:
    """The most confidently wrong predictions; `images` (arrays aligned with records) when there are no files."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:GALLERY_SIZE]
    return [{"path": records[i].path, "true": classes[y_true[i]], "predicted": classes[predicted[i]],
             "confidence": float(probs[i, predicted[i]]), **({"image": images[i]} if images is not None else {})}
            for i in wrong]


def _write_predictions(path: Path, records, classes, probs) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "predicted", *[f"p_{c}" for c in classes]])
    for r, p in zip(records, probs):
        writer.writerow([r.path, r.label, classes[int(np.argmax(p))], *(repr(float(v)) for v in p)])
    atomic_write_text(path, buffer.getvalue())


def read_predictions(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """(paths, true labels, probabilities) from a predictions.csv written by `evaluate`."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [k for k in rows[0] if k.startswith("p_")] if rows else []
    return [r["path"] for r in rows], [r["label"] for r in rows], np.array([[float(r[c]) for c in columns]
                                                                             for r in rows])


def _read_history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        parsed = {}
        for k, v in row.items():
            if k == "phase":
                parsed[k] = v
            elif k == "kept":
                parsed[k] = v == "True"
            else:
                try:
                    parsed[k] = float(v)
                except (TypeError, ValueError):
                    parsed[k] = None
        out.append(parsed)
    return out


def _read_optional(folder: RunFolder, name: str):
    return folder.read_json(name) if folder.file(name).is_file() else None
