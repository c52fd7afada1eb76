"""Prediction sets for a fitted recipe: split conformal on its held-out val answers (evaluation/conformal.py).

    the first fit's val probabilities (held out), at the calibration's temperature -> the sets' record,
        which labels.json keeps and `predict`, `evaluate`, `serve` and `inceptune.load` answer from

As with the temperature, a refit saw val: the sets' threshold comes from the fit on train alone, and the
test split measures the coverage the saved model really gives (`evaluate`).
"""

from __future__ import annotations

from inceptune import console
from inceptune.evaluation.calibration import at_temperature
from inceptune.evaluation.conformal import fit_sets, thresholds
from inceptune.settings import Settings
from inceptune.training.calibrate import FITTED_ON
from inceptune.training.recipe import FittedRecipe


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
    if not (thresholds(record, probs.shape[1]) < float("inf")).all():
        console.warn(f"val has too few images for {record['coverage']:.0%} prediction sets"
                     + (" of every class" if record["by_class"] else "") + ": those sets hold every class. A larger "
                     "val split or a lower --coverage gives informative sets.")
    return record
