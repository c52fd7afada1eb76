"""The baseline every accuracy is reported next to: a plain logistic regression (scikit-learn's defaults,
C = 1, on standardised features) on the cached mixed10 average-pooled features of the same photos.

Val: fitted on train, as the recipe's val figures are. Test: fitted on the images the saved model was
fitted on (train + val after a refit).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score
from threadpoolctl import threadpool_limits

from inceptune.data.dataset import Dataset
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import read_features
from inceptune.search.heads import fit_linear
from inceptune.vocabulary.sources import POOLED

RECIPE = "logistic regression (C=1) on mixed10 average-pooled features"


def baseline_scores(dataset: Dataset, cache: FeatureCache, refit: bool) -> dict | None:
    if dataset.multilabel or not dataset.split("train"):
        return None
    scores: dict = {"recipe": RECIPE}
    for split, fit_on in (("val", ("train",)), ("test", ("train", "val") if refit else ("train",))):
        if not dataset.split(split):
            continue
        train = [r for name in fit_on for r in dataset.split(name)]
        with threadpool_limits(1):
            head = fit_linear(read_features(train, cache, POOLED), _labels(dataset, train), len(dataset.classes))
            held = dataset.split(split)
            p = head.predict_proba(read_features(held, cache, POOLED))
        scores[split] = {"accuracy": float(accuracy_score(_labels(dataset, held), p.argmax(axis=1))),
                         "fit_on": " + ".join(fit_on), "images": len(held)}
    return scores


def _labels(dataset: Dataset, records) -> np.ndarray:
    return np.array([dataset.label_index(r) for r in records])
