"""Outliers: photos far from their own class and from every class, by cleanlab's k-nearest-neighbour
out-of-distribution score on the pooled features.

A photo is flagged when its score against the whole dataset and its score against its own class are both
below a robust fence of their distributions (median minus 3.5 scaled MADs, Iglewicz and Hoaglin's rule):
what counts as far is read from the data, not fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inceptune.features.neighbours import unit_rows

FENCE = 3.5  # modified z-score beyond which a value is an outlier (Iglewicz and Hoaglin)
NEIGHBOURS = 10


@dataclass
class Outliers:
    flagged: np.ndarray
    score: np.ndarray  # 1 - cleanlab's score against every class: higher is stranger
    own_class: np.ndarray  # 1 - the score against the photo's own class
    fences: tuple[float, float]

    def summary(self) -> dict:
        return {"method": "cleanlab.outlier.OutOfDistribution (k-nearest-neighbour cosine distance)",
                "rule": f"below median - {FENCE} scaled MAD against every class and against its own class",
                "fences": [round(f, 4) for f in self.fences], "flagged": int(self.flagged.sum())}


def _knn_scores(x: np.ndarray) -> np.ndarray:
    from cleanlab.outlier import OutOfDistribution

    if len(x) < 3:
        return np.ones(len(x))
    k = min(NEIGHBOURS, len(x) - 1)
    return OutOfDistribution({"k": k}).fit_score(features=x, verbose=False)


def _fence(scores: np.ndarray) -> float:
    median = np.median(scores)
    mad = np.median(np.abs(scores - median)) * 1.4826
    return float(median - FENCE * mad) if mad > 0 else float(median) - 1e-9


def find_outliers(features: np.ndarray, y: np.ndarray) -> Outliers:
    x = unit_rows(features)
    every = _knn_scores(x)
    own = np.ones(len(x))
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        own[members] = _knn_scores(x[members])
    fences = (_fence(every), _fence(own))
    flagged = (every < fences[0]) & (own < fences[1])
    return Outliers(flagged, 1.0 - every, 1.0 - own, fences)
