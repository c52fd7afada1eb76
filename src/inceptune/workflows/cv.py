"""`cv`: stratified k-fold cross-validation of the whole two-phase recipe, with out-of-fold predictions.

    settings (checked) -> prepare: the data, extract_and_group (once, every image; near-duplicates in one fold)
          -> extract_views (every image's augmented views)
          -> for each fold: carve val from the other folds, fit_recipe, calibrate on that val,
             probabilities of the held-out fold (from cached features)
          -> cv.json (per fold, mean, std and t interval of every metric; the out-of-fold metrics with
             their bootstrap intervals), predictions.csv (every image's out-of-fold probabilities and its
             fold), report.html

Folds are stratified by class and grouped by content hash, so identical
files never sit on both sides of a fold. Because the backbone runs once per
image for all folds, K folds cost one feature extraction plus K small fits.
Splits given by folders (train/val/test) are pooled: cross-validation makes
its own. Every image is held out exactly once, so the out-of-fold
probabilities are an honest prediction for each image of the data set.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.data.dataset import Dataset
from inceptune.data.split import assign_folds, assign_splits
from inceptune.engines.devices import Strategy, training_devices
from inceptune.errors import UserError
from inceptune.evaluation.baseline import RECIPE as BASELINE
from inceptune.evaluation.baseline import baseline_scores
from inceptune.evaluation.metrics import classification_metrics, summarize_folds, summarize_values
from inceptune.evaluation.predictions import write_predictions
from inceptune.evaluation.report import write_report
from inceptune.runs import RunFolder, versions
from inceptune.settings import Settings, documented, resolve
from inceptune.training.calibrate import calibrate
from inceptune.training.extraction import extract_views
from inceptune.training.recipe import fit_recipe
from inceptune.workflows.prepare import prepare
from inceptune.workflows.result import default_out


@dataclass
class OutOfFold:
    """Every image's probabilities from the fold that held it out."""

    paths: list[str]
    labels: list[str]
    folds: np.ndarray  # (N,) the fold (0-based) that held each image out
    probabilities: np.ndarray  # (N, classes)
    classes: list[str]

    @property
    def y(self) -> np.ndarray:
        return np.array([self.classes.index(label) for label in self.labels])


@dataclass
class CrossValidation:
    summary: dict  # per metric: mean, std, folds, ci95 (the t interval of the mean; None for one fold)
    per_fold: list[dict]
    predictions: OutOfFold
    path: Path  # the folder with cv.json, predictions.csv and report.html
    record: dict  # cv.json's content


_DATA = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
_CONFIG = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None)


@documented("cv", [_DATA, _CONFIG])
def cross_validate(data=None, *, config=None, **settings) -> CrossValidation:
    """Cross-validate the train recipe on a folder of class subfolders.

    Writes cv.json, predictions.csv (out-of-fold probabilities with a `fold`
    column) and report.html to `out` (default runs/cv-DATA-TIME).

    Examples:
        >>> cv = inceptune.cross_validate("photos/", folds=5, weights="imagenet")
        >>> cv.summary["accuracy"]
        {'mean': 0.93, 'std': 0.02, 'folds': 5, 'ci95': [0.905, 0.955]}
        >>> cv.predictions.probabilities.shape
        (500, 5)
    """
    s = resolve("cv", {**settings, **({"data": data} if data is not None else {})}, config)
    if s.run.distribute == "multi-worker":
        raise UserError("cv runs in one process; --distribute multi-worker is for train.")
    with training_devices(s.run.precision, s.run.distribute) as strategy:
        return _cross_validate(s, strategy)


def _cross_validate(s: Settings, strategy: Strategy) -> CrossValidation:
    start = time.perf_counter()
    prepared = prepare(s, test_split=0.0, on_data=lambda dataset: _open(s, dataset), say_weights=True,
                       strategy=strategy)
    out, dataset, weights, cache = prepared.out, prepared.dataset, prepared.weights, prepared.cache
    extractor, extraction = prepared.classifier, prepared.extraction
    pooled = [dataclasses.replace(r, split=None) for r in dataset.records]  # near-duplicates grouped
    fold_of = _assign_folds(pooled, s.cv.folds, s.data.seed)
    views = extract_views(pooled, cache, extractor, s)  # every image trains in K - 1 folds

    per_fold, probabilities = [], np.zeros((len(pooled), len(dataset.classes)))
    for k in range(s.cv.folds):
        console.info(f"Fold {k + 1}/{s.cv.folds}")
        held = np.flatnonzero(fold_of == k)
        held_out = [dataclasses.replace(pooled[i], split="test") for i in held]
        rest = assign_splits([r for r, f in zip(pooled, fold_of) if f != k], s.data.val_split, 0.0, s.data.seed)
        fold_data = dataclasses.replace(dataset, records=rest + held_out)
        fit = fit_recipe(weights, fold_data, cache, s, views, strategy=strategy)
        calibrate(fit, s)  # as train does: the held-out fold measures the calibrated model train would save
        probabilities[held] = fit.probabilities("test")
        metrics = classification_metrics(np.array([fold_data.label_index(r) for r in held_out]), probabilities[held],
                                         dataset.classes)
        metrics["fine_tune_epochs_run"] = sum(1 for h in fit.first.history if h["phase"] == "fine-tune")
        metrics["baseline_accuracy"] = baseline_scores(fold_data, cache, bool(fit.refit))["test"]["accuracy"]
        if fit.search:
            metrics["recipe"] = fit.search["recipe"]
        per_fold.append(metrics)
        console.info(f"Fold {k + 1}: accuracy {metrics['accuracy']:.4f} on {metrics['images']} images")

    predictions = OutOfFold([r.path for r in pooled], [r.label for r in pooled], fold_of, probabilities,
                            dataset.classes)
    record = {
        "data": dataset.root, "folds": s.cv.folds, "classes": dataset.classes, "images": len(pooled),
        "summary": summarize_folds(per_fold), "per_fold": per_fold,
        "out_of_fold": classification_metrics(predictions.y, probabilities, dataset.classes),
        "baseline": {"recipe": BASELINE, "accuracy": summarize_values([f["baseline_accuracy"] for f in per_fold])},
        "seconds": round(time.perf_counter() - start, 3), "features": extraction.as_dict(),
        "settings": {**s.as_dict(("data", "recipe", "run", "cv")), "resolved": {"weights": weights.describe()},
                     "versions": versions()},
    }
    write_predictions(out.file("predictions.csv"), pooled, dataset.classes, probabilities, folds=fold_of)
    atomic_write_json(out.file("cv.json"), record)
    write_report(out.file("report.html"), f"inceptune cross-validation of {Path(dataset.root).name}", cv=record,
                 dataset={**dataset.summary(), "counts": _fold_counts(dataset, fold_of, s.cv.folds)},
                 settings=record["settings"])
    acc = record["summary"]["accuracy"]
    ci = f" (95% interval {acc['ci95'][0]:.4f}-{acc['ci95'][1]:.4f})" if acc["ci95"] else ""
    console.info(f"{s.cv.folds}-fold accuracy {acc['mean']:.4f} ± {acc['std']:.4f}{ci} (logistic regression on "
                 f"mixed10 features: {record['baseline']['accuracy']['mean']:.4f}); cv.json, predictions.csv and "
                 f"report.html in {out.path}/")
    return CrossValidation(record["summary"], per_fold, predictions, out.path, record)


def _open(s: Settings, dataset: Dataset) -> RunFolder:
    """Once the data is read, before any extraction: a single-label dataset that the folds can split, then
    the output folder."""
    if dataset.multilabel:
        raise UserError("cv covers single-label tasks; a multi-label CSV's per-label metrics come from train.")
    _assign_folds([dataclasses.replace(r, split=None) for r in dataset.records], s.cv.folds, s.data.seed)
    return RunFolder.create(s.run.out or default_out(s.data.data, "cv"), overwrite=s.run.overwrite)


def _assign_folds(records, folds: int, seed: int) -> np.ndarray:
    try:
        return assign_folds([r.label for r in records], [r.group_key for r in records], folds, seed)
    except UserError as exc:
        raise UserError(str(exc).replace(f"{folds} folds", f"--folds {folds}")) from None


def _fold_counts(dataset: Dataset, fold_of: np.ndarray, folds: int) -> dict:
    """Images per class in each fold, shaped like Dataset.counts() for the report's table."""
    table = {}
    for k in range(folds):
        table[f"fold {k + 1}"] = {c: int(sum(1 for r, f in zip(dataset.records, fold_of) if f == k and r.label == c))
                                  for c in dataset.classes}
    return table
