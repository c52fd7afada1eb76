"""`cv`: stratified k-fold cross-validation of the whole two-phase recipe.

    files -> load_dataset -> extract_features (once, every image)
          -> for each fold: carve val from the other folds, fit_two_phases,
             metrics on the held-out fold (from cached features)
          -> cv.json (per fold, mean and std of every metric), report.html

Folds are stratified by class and grouped by content hash, so identical
files never sit on both sides of a fold. Because the backbone runs once per
image for all folds, K folds cost one feature extraction plus K small fits.
Splits given by folders (train/val/test) are pooled: cross-validation makes
its own.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.data.dataset import Dataset, load_dataset
from inceptune.data.split import assign_splits
from inceptune.errors import UserError
from inceptune.evaluation.metrics import classification_metrics, summarize_folds
from inceptune.evaluation.report import write_report
from inceptune.models.weights import resolve_weights
from inceptune.runs import RunFolder
from inceptune.training.trainer import (
    SplitData,
    check_settings,
    extract_features,
    feature_cache,
    fit_two_phases,
    make_config,
    new_classifier,
    versions,
)


def cross_validate(data: str, folds: int = 5, **settings) -> dict:
    """Cross-validate the train recipe on a folder of class subfolders; `settings` are `train`'s.

    Writes cv.json and report.html to `out` (default runs/cv-DATA-TIME) and
    returns the cv.json content: `per_fold` metrics and their `summary`
    (mean, std per metric).

    Examples:
        >>> cv = inceptune.cross_validate("photos/", folds=5, weights="imagenet")
        >>> cv["summary"]["accuracy"]
        {'mean': 0.93, 'std': 0.02, 'folds': 5}
    """
    settings.setdefault("out", str(Path("runs") / f"cv-{Path(data).resolve().name}-{datetime.now():%Y%m%d-%H%M%S}"))
    c = make_config(data, {**settings, "test_split": 0.0})
    check_settings(c)
    if folds < 2:
        raise UserError(f"--folds must be at least 2, got {folds}.")
    start = time.perf_counter()
    dataset = load_dataset(c.data, c.val_split, 0.0, c.seed, c.max_pixels)
    pooled = [dataclasses.replace(r, split=None) for r in dataset.records]
    fold_of = _assign_folds(pooled, folds, c.seed)
    out = RunFolder.create(c.out, overwrite=c.overwrite)
    weights = resolve_weights(c.weights)
    console.info(f"Weights: {weights.describe()}")
    cache = feature_cache(c, weights)
    extraction = extract_features(dataset, cache, new_classifier(weights, dataset, c), c)

    per_fold = []
    for k in range(folds):
        console.info(f"Fold {k + 1}/{folds}")
        held_out = [dataclasses.replace(r, split="test") for r, f in zip(pooled, fold_of) if f == k]
        rest = assign_splits([r for r, f in zip(pooled, fold_of) if f != k], c.val_split, 0.0, c.seed)
        fold_data = dataclasses.replace(dataset, records=rest + held_out)
        classifier = new_classifier(weights, fold_data, c)
        splits = SplitData(fold_data, classifier, cache, c)
        fitted = fit_two_phases(classifier, splits, c)
        y = np.array([fold_data.label_index(r) for r in held_out])
        metrics = classification_metrics(y, splits.probabilities(fitted.model, "test", fitted.kind),
                                         dataset.classes)
        metrics["fine_tune_epochs_run"] = sum(1 for h in fitted.history if h["phase"] == "fine-tune")
        per_fold.append(metrics)
        console.info(f"Fold {k + 1}: accuracy {metrics['accuracy']:.4f} on {metrics['images']} images")

    result = {
        "data": dataset.root, "folds": folds, "classes": dataset.classes, "images": len(pooled),
        "summary": summarize_folds(per_fold), "per_fold": per_fold,
        "seconds": round(time.perf_counter() - start, 3), "features": extraction.as_dict(),
        "settings": {**c.as_dict(), "folds": folds, "resolved_weights": weights.describe(), "versions": versions()},
    }
    atomic_write_json(out.file("cv.json"), result)
    write_report(out.file("report.html"), f"inceptune cross-validation of {Path(dataset.root).name}", cv=result,
                 dataset={**dataset.summary(), "counts": _fold_counts(dataset, fold_of, folds)},
                 settings=result["settings"])
    acc = result["summary"]["accuracy"]
    console.info(f"{folds}-fold accuracy {acc['mean']:.4f} ± {acc['std']:.4f}; cv.json and report.html in {out.path}/")
    return result


def _assign_folds(records, folds: int, seed: int) -> np.ndarray:
    labels = np.array([r.label for r in records])
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        raise UserError(f"Class '{classes[counts.argmin()]}' has {counts.min()} images, fewer than --folds {folds}; "
                        "use fewer folds or add images.")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.empty(len(records), dtype=int)
    groups = [r.sha256 for r in records]
    for k, (_, test_index) in enumerate(splitter.split(np.zeros(len(records)), labels, groups)):
        fold_of[test_index] = k
    return fold_of


def _fold_counts(dataset: Dataset, fold_of: np.ndarray, folds: int) -> dict:
    """Images per class in each fold, shaped like Dataset.counts() for the report's table."""
    table = {}
    for k in range(folds):
        table[f"fold {k + 1}"] = {c: int(sum(1 for r, f in zip(dataset.records, fold_of) if f == k and r.label == c))
                                  for c in dataset.classes}
    return table
