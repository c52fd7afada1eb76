"""The OOD branch of a fitted recipe (models/ood.py): its bank and its threshold.

    the train split's pooled features, as the final model computes them -> the bank (at most BANK_LIMIT rows)
    the val split's scores (never in the bank: held out) -> the threshold that keeps KEEP of them known

The features come from the cache: pooled features themselves when the final model was not fine-tuned, else the
cached activations through the fine-tuned top of the backbone and its pooling. With a refit, the bank still holds
the train split only, so val stays out of it and its scores stay held out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from inceptune import console
from inceptune.vocabulary.limits import OOD_KEEP
from inceptune.vocabulary.sources import Source
from inceptune.models.infer import answers
from inceptune.models.ood import BANK_LIMIT, bank_rows, ood_branch
from inceptune.settings import Settings
from inceptune.training.recipe import FittedRecipe

KEEP = OOD_KEEP  # of held-out in-distribution images answered as known: the threshold is their 95th percentile
SCORE = "cosine distance from the image's pooled features to the nearest training image's (1 - similarity)"


@dataclass
class OodBranch:
    branch: keras.Model  # pooled features -> score
    record: dict  # threshold, how it was chosen, bank size: metrics.json and labels.json
    features: Callable[[str], np.ndarray]  # split -> its pooled features, as the final model computes them

    def scores(self, split: str) -> np.ndarray:
        return answers(self.branch, self.features(split)).reshape(-1)


def fit_ood(fit: FittedRecipe, s: Settings) -> OodBranch | None:
    """The branch and its threshold, or None with `--no-ood` or without a val split to choose the threshold on."""
    if not s.recipe.ood:
        return None
    if not fit.held.dataset.split("val"):
        console.info("No OOD score: there is no val split to choose its threshold on.")
        return None
    tuned = fit.final.kind != Source(s.recipe.feature_block, s.recipe.pooling).kind
    through = fit.classifier.features_model(s.recipe.unfreeze_from if tuned else None)

    def features(split: str) -> np.ndarray:
        data = fit.held.data(split, fit.final.kind, views=False)
        return data.features() if through is None else answers(through, data)

    train = fit.held.dataset.split("train")
    # sampled per class when capped (multi-label rows have no one class: sampled evenly)
    rows = bank_rows(np.array([fit.held.dataset.label_index(r) for r in train]) if not fit.classifier.multilabel
                     else np.zeros(len(train), int), BANK_LIMIT, s.data.seed)
    ood = OodBranch(ood_branch(features("train")[rows]), {}, features)
    val = ood.scores("val")
    threshold = float(np.quantile(val, KEEP))
    ood.record = {"score": SCORE, "threshold": threshold, "keep": KEEP, "chosen_on": "the val split (held out of the "
                  "bank)", "bank_images": int(len(rows)), "val_unknown_share": float(np.mean(val > threshold))}
    console.info(f"OOD score: threshold {threshold:.4f} keeps {1 - ood.record['val_unknown_share']:.0%} of val known "
                 f"(bank of {len(rows)} training images).")
    return ood
