"""The data a search scores recipes on, and the score of one candidate.

    SearchData  train + val records (never test), their labels and folds, features read from the cache per
                source (each source read once)
    score       a candidate (recipe settings) -> Score, by the folds; single-threaded BLAS, so two cores
                are not fought over and the numbers do not depend on thread timing
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from inceptune.data.scan import ImageRecord
from inceptune.data.split import assign_folds
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import read_features
from inceptune.vocabulary.sources import Source
from inceptune.search.heads import DenseRecipe, Score, cross_validate, fit_dense, fit_linear

MIN_FOLDS = 2


@dataclass
class SearchData:
    records: list[ImageRecord]
    labels: np.ndarray  # class index per record
    classes: list[str]
    folds: np.ndarray  # the fold holding each record out
    cache: FeatureCache
    seed: int
    _features: dict = field(default_factory=dict)

    @classmethod
    def of(cls, records: list[ImageRecord], label_index: Callable[[ImageRecord], int], classes: list[str],
           cache: FeatureCache, folds: int, seed: int) -> "SearchData":
        """Folds: `folds`, or fewer when a class has fewer images (UserError below two)."""
        labels = np.array([label_index(r) for r in records])
        smallest = int(np.bincount(labels, minlength=len(classes)).min()) if len(records) else 0
        fold_count = min(folds, smallest)
        if fold_count < MIN_FOLDS:
            from inceptune.errors import UserError

            raise UserError(f"The search needs at least {MIN_FOLDS} images of each class in train + val.")
        fold_of = assign_folds([classes[i] for i in labels], [r.group_key for r in records], fold_count, seed)
        return cls(records, labels, classes, fold_of, cache, seed)

    def refolded(self, seed: int) -> "SearchData":
        """The same records and cached features, cut into folds by another seed (a repeat of the CV)."""
        fold_of = assign_folds([self.classes[i] for i in self.labels], [r.group_key for r in self.records],
                               self.fold_count, seed)
        return SearchData(self.records, self.labels, self.classes, fold_of, self.cache, self.seed, self._features)

    @property
    def fold_count(self) -> int:
        return int(self.folds.max()) + 1

    def features(self, source: Source) -> np.ndarray:
        if source.kind not in self._features:
            self._features[source.kind] = read_features(self.records, self.cache, source.kind)
        return self._features[source.kind]

    def class_weight(self, spec: str | None, y: np.ndarray) -> dict[int, float] | None:
        """--class-weight for one fold's training labels: auto = balanced on them."""
        if not spec:
            return None
        k = len(self.classes)
        if spec == "auto":
            counts = np.bincount(y, minlength=k)
            return {i: float(len(y) / (k * counts[i])) if counts[i] else 1.0 for i in range(k)}
        weights = {i: 1.0 for i in range(k)}
        for item in spec.split(","):
            name, _, value = item.partition("=")
            weights[self.classes.index(name.strip())] = float(value)
        return weights


def head_fitter(candidate: dict, data: SearchData) -> Callable:
    """(features, labels) -> probability function, for the candidate's head."""
    k = len(data.classes)
    if candidate["head"] == "linear":
        return lambda x, y: fit_linear(x, y, k, candidate["l2"], data.class_weight(candidate.get("class_weight"),
                                                                                     y)).predict_proba
    units = tuple(candidate.get("head_units", ()))
    recipe = DenseRecipe(units[0] if units else 0, candidate["dropout"], candidate["learning_rate"],
                         candidate["epochs"], candidate["label_smoothing"], candidate["weight_decay"],
                         candidate.get("batch_size", 32))
    return lambda x, y: fit_dense(x, y, k, recipe, data.class_weight(candidate.get("class_weight"), y), data.seed)


def score(candidate: dict, data: SearchData, report: Callable[[int, float], None] | None = None) -> Score:
    """The candidate's accuracy and log loss, each fold held out in turn."""
    x = data.features(Source(candidate["feature_block"], candidate["pooling"]))
    with threadpool_limits(1):
        return cross_validate(head_fitter(candidate, data), x, data.labels, data.folds, len(data.classes), report)
