"""The evaluation of a run: which labelled images, and their metrics, plots and report.

    the run's split (manifest.csv) | another labelled folder -> records
    records + probabilities -> classification_metrics -> predictions.csv, evaluation.json,
                               PNG plots, report.html

`TrainedModel.evaluate` (inference/model.py) runs the run's model on the
images themselves (not on cached features), on the runtime it was loaded
with, so it measures exactly what `predict` gets (with `runtime="keras"`,
what a plain-Keras user gets); `train` calls `write_evaluation` with the
probabilities of the cached features at its end.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.data.dataset import read_manifest
from inceptune.data.scan import ImageRecord, scan_dataset
from inceptune.errors import UserError
from inceptune.evaluation import plots
from inceptune.evaluation.calibration import at_temperature
from inceptune.evaluation.conformal import prediction_sets, set_summary
from inceptune.evaluation.metrics import as_probabilities, calibration, classification_metrics
from inceptune.evaluation.predictions import write_predictions
from inceptune.evaluation.report import write_report
from inceptune.runs import RunFolder

GALLERY_SIZE = 12


def evaluation_records(folder: RunFolder, data: str | None, split: str = "test") -> tuple[list[ImageRecord], str, Path]:
    """(records, a description of the source, the folder for the results) of what to evaluate a run on.

    On the run's own split, the files go to the run folder itself (its
    `report.html` included); on another folder, to `RUN/evaluations/NAME/`.
    """
    if folder.task == "multilabel":
        raise UserError(f"The run {folder.path} is multi-label: its per-label test metrics are in evaluation.json, "
                        "written by train; evaluate covers single-label runs.")
    if data is not None:
        return labelled_records(data, folder.classes), data, folder.path / "evaluations" / Path(data).resolve().name
    if folder.resolved.get("data_kind") == "arrays":
        raise UserError(f"The run {folder.path} was trained on arrays, whose {split} metrics are in its report.html; "
                        "pass a folder of labelled images to evaluate on.")
    records = [r for r in read_manifest(folder.file("manifest.csv")) if r.split == split]
    if not records:
        raise UserError(f"The run {folder.path} has no {split} split; pass a folder of labelled images to evaluate "
                        "on.")
    return records, f"{folder.path} ({split} split)", folder.path


def labelled_records(data: str, classes: list[str]) -> list[ImageRecord]:
    """The images of a folder of class subfolders, all of classes the model knows."""
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
                     images: np.ndarray | None = None, recipe: list[tuple[str, str]] = (),
                     ood_scores: np.ndarray | None = None, ood_threshold: float | None = None,
                     coverage: float | None = None) -> dict:
    """Metrics, predictions.csv, evaluation.json, the plots and report.html for predictions `probs` of `records`.

    With `ood_scores` (the model's OOD score of each record) and the run's OOD threshold, the share of these
    labelled, in-distribution images the model would answer "none of these" for (at `ood_threshold`: the
    runtime's that answered, by default the run's). With the run's prediction sets (labels.json), their
    realised coverage and mean size at `coverage` (by default the run's), each with its interval.

    A calibrated run (a temperature in labels.json) is also measured as it was before calibration: the
    probabilities at temperature 1 / T are exactly the uncalibrated model's.
    """
    target = Path(target)
    y_true = np.array([classes.index(r.label) for r in records])
    metrics = {"source": source, **classification_metrics(y_true, probs, classes), **(extra or {}),
               "report": str(target / "report.html")}
    threshold = folder.ood_threshold if ood_threshold is None else ood_threshold
    if ood_scores is not None and threshold is not None:
        unknown = np.asarray(ood_scores) > threshold
        metrics["ood"] = {"threshold": threshold, "unknown": int(unknown.sum()),
                          "unknown_share": float(unknown.mean()),
                          "meaning": "images of the model's own classes answered 'none of these' (rejected)"}
    sets = folder.sets
    if sets is not None and folder.task != "multilabel":
        metrics["sets"] = set_summary(prediction_sets(probs, sets, coverage), y_true,
                                      sets["coverage"] if coverage is None else coverage, sets["score"])
    temperature = folder.temperature
    if temperature is not None:
        before, bins = calibration(y_true, at_temperature(as_probabilities(probs), 1.0 / temperature))
        metrics["calibration"] = {"method": "temperature", "temperature": temperature, "ece_before": before,
                                  "ece_after": metrics["ece"], "bins_before": bins}
    write_predictions(target / "predictions.csv", records, classes, probs)
    figures = _draw(target, folder, records, classes, y_true, probs, metrics, images)
    atomic_write_json(target / "evaluation.json", metrics)
    write_report(target / "report.html", f"inceptune run {folder.path.name}", figures=figures, metrics=metrics,
                 dataset=_read_optional(folder, "dataset.json"), settings=_read_optional(folder, "config.json"),
                 source=source, recipe=recipe)
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
        (plots.reliability_diagram(_reliability_panels(metrics), target / "reliability_diagram.png"),
         "Reliability diagram" + (" before and after calibration" if "calibration" in metrics else "")),
        (plots.error_gallery(_confident_errors(records, classes, y_true, probs, images), target / "errors.png"),
         "Most confidently wrong images"),
    ]
    return figures


def _reliability_panels(metrics: dict) -> list[tuple[str, list[dict], float]]:
    c = metrics.get("calibration")
    if c is None:
        return [("Reliability diagram", metrics["calibration_bins"], metrics["ece"])]
    return [("Before calibration", c["bins_before"], c["ece_before"]),
            (f"After (temperature {c['temperature']:.3g})", metrics["calibration_bins"], metrics["ece"])]


def _confident_errors(records, classes, y_true, probs, images=None) -> list[dict]:
    """The most confidently wrong predictions; `images` (arrays aligned with records) when there are no files."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:GALLERY_SIZE]
    return [{"path": records[i].path, "true": classes[y_true[i]], "predicted": classes[predicted[i]],
             "confidence": float(probs[i, predicted[i]]), **({"image": images[i]} if images is not None else {})}
            for i in wrong]


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
