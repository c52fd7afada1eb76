"""A fitted recipe calibrated on its held-out val split (evaluation/calibration.py, evaluation/conformal.py).

    the first fit's val probabilities (held out) -> a temperature, folded into the final model's output layer
        -> multi-label: a threshold per label, chosen on the calibrated val probabilities
        -> single-label: prediction sets (split conformal) on the calibrated val probabilities, which
           labels.json keeps and `predict`, `evaluate`, `serve` and `inceptune.load` answer from

With a refit, the temperature fitted on the first fit's val answers is folded into the refit, which saw val:
its own val answers are not held out. The same holds for the sets' threshold: the test split measures the
coverage the saved model really gives. `train` and `cv` both call it, so cv measures what train saves.
"""

from __future__ import annotations

import numpy as np

from inceptune import console
from inceptune.evaluation.calibration import at_temperature, best_thresholds, fit_temperature
from inceptune.evaluation.conformal import fit_sets, thresholds as set_thresholds
from inceptune.evaluation.metrics import calibration as expected_calibration_error
from inceptune.settings import Settings
from inceptune.training.recipe import FittedRecipe

FITTED_ON = "the val split, answered by the fit on train alone (held out)"


def calibrate(fit: FittedRecipe, s: Settings) -> dict | None:
    """Fold a temperature into `fit`'s final model (and choose multi-label thresholds); its record, or None
    when `--calibrate none`."""
    if s.recipe.calibrate == "none":
        return None
    if fit.val is None:
        console.info("Calibration skipped: there is no val split to fit it on.")
        return {"method": None, "skipped": "no val split"}
    multilabel = fit.classifier.multilabel
    y = fit.held.targets("val")
    temperature = fit_temperature(fit.val, y, multilabel)
    fit.classifier.fold_temperature(temperature)
    after = at_temperature(fit.val, temperature, multilabel)
    record = {"method": "temperature", "temperature": temperature, "fitted_on": FITTED_ON, "images": int(len(y))}
    if multilabel:
        thresholds = best_thresholds(y, after)
        record["thresholds"] = {c: float(t) for c, t in zip(fit.held.dataset.classes, thresholds)}
        console.info(f"Calibration: temperature {temperature:.3g}; thresholds per label "
                     + ", ".join(f"{c} {t:.2f}" for c, t in record["thresholds"].items()) + " (fitted on val).")
        return record
    record["val_ece_before"] = expected_calibration_error(y, fit.val)[0]
    record["val_ece_after"] = expected_calibration_error(y, after)[0]
    console.info(f"Calibration: temperature {temperature:.3g}; val ECE {record['val_ece_before']:.4f} -> "
                 f"{record['val_ece_after']:.4f} (fitted on val; the test split measures it).")
    return record


def thresholds_of(record: dict | None, classes: list[str]) -> np.ndarray | None:
    """The record's multi-label thresholds in class order, or None."""
    if not record or not record.get("thresholds"):
        return None
    return np.array([record["thresholds"][c] for c in classes])


def fit_prediction_sets(fit: FittedRecipe, s: Settings, calibration: dict | None) -> dict | None:
    """The sets' record, or None: --coverage 0, a multi-label run (its labels are already a set), no val split."""
    if not s.recipe.coverage or fit.classifier.multilabel:
        return None
    if fit.val is None:
        console.info("Prediction sets skipped: there is no val split to fit them on.")
        return None
    probs = fit.val
    if calibration and calibration.get("temperature"):
        probs = at_temperature(probs, calibration["temperature"])
    record = fit_sets(probs, fit.held.targets("val"), s.recipe.coverage, s.recipe.set_score, s.recipe.set_by_class,
                      s.data.seed, fitted_on=FITTED_ON)
    sizes = record.get("chosen_by", {}).get("mean_set_size_on_halves")
    console.info(f"Prediction sets: {record['coverage']:.0%} coverage, {record['score']} score"
                 + (" per class" if record["by_class"] else "") + f", fitted on {record['images']} val images"
                 + (f" (mean set size on val halves: " + ", ".join(f"{k} {v:.2f}" for k, v in sizes.items()) + ")"
                    if sizes else "") + ".")
    if not (set_thresholds(record, probs.shape[1]) < float("inf")).all():
        console.warn(f"val has too few images for {record['coverage']:.0%} prediction sets"
                     + (" of every class" if record["by_class"] else "") + ": those sets hold every class. A larger "
                     "val split or a lower --coverage gives informative sets.")
    return record
