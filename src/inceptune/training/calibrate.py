"""A fitted recipe calibrated on its held-out val split (evaluation/calibration.py).

    the first fit's val probabilities (held out) -> a temperature, folded into the final model's output layer
        -> multi-label: a threshold per label, chosen on the calibrated val probabilities

With a refit, the temperature fitted on the first fit's val answers is folded into the refit, which saw val:
its own val answers are not held out. `train` and `cv` both call it, so cv measures what train saves.
"""

from __future__ import annotations

import numpy as np

from inceptune import console
from inceptune.evaluation.calibration import at_temperature, best_thresholds, fit_temperature
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
