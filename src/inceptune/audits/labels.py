"""Label issues: cleanlab's `find_label_issues` on out-of-fold probabilities of heads cross-validated on the
cached features.

The probabilities average several heads, each fitted on the other folds: an L2 logistic regression on
standardised pooled features of four blocks (the averages of mixed6, mixed7, mixed8 and mixed10, the maxima
of mixed7 and mixed8: what a photo looks like to shallower and deeper blocks), and a cosine
k-nearest-neighbour vote. Near-duplicates share a fold (groups),
so a copy never vouches for its own label.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from inceptune.features.neighbours import unit_rows
from inceptune.vocabulary.sources import POOLED, pooled_kind

NEIGHBOUR_SOURCE = POOLED  # mixed10's average, the classic head's input
SOURCES = (*(pooled_kind(b, "avg") for b in ("mixed6", "mixed7", "mixed8", "mixed10")),
           *(pooled_kind(b, "max") for b in ("mixed7", "mixed8")))
L2 = 100.0  # scikit-learn's 1/C on standardised features: strong, as a noisy-label fit wants
NEIGHBOURS = 10
FOLDS = 10  # heads see 90% of the photos: out-of-fold probabilities closer to the final model's
FILTER = "prune_by_class"  # cleanlab: per class, drop as many as the confident joint says are off (lowest first)


@dataclass
class LabelIssues:
    flagged: np.ndarray  # bool per image
    score: np.ndarray  # 1 - cleanlab's label quality (self-confidence): higher is more likely wrong
    suggested: np.ndarray  # class index the heads give
    probabilities: np.ndarray  # out-of-fold, (N, classes)
    labels: np.ndarray  # the given class indices
    folds: int
    head_accuracy: dict  # out-of-fold accuracy of each head against the given labels

    def summary(self) -> dict:
        return {"method": f"cleanlab.filter.find_label_issues (filter_by={FILTER}) on out-of-fold probabilities",
                "heads": [f"logistic regression (L2 {L2:g}) on standardised {k}" for k in SOURCES]
                + [f"cosine {NEIGHBOURS}-nearest-neighbour vote on {NEIGHBOUR_SOURCE}"],
                "folds": self.folds, "head_accuracy": self.head_accuracy,
                "ensemble_accuracy": round(float((self.probabilities.argmax(1) == self.labels).mean()), 4),
                "flagged": int(self.flagged.sum())}


def out_of_fold(features: dict[str, np.ndarray], y: np.ndarray, classes: int, groups: list[str], seed: int
                ) -> tuple[np.ndarray, int, dict]:
    """Averaged out-of-fold class probabilities (N, classes), the folds, and each head's accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(FOLDS, np.bincount(y, minlength=classes).min(), len(set(groups))))
    if folds < 2:
        raise ValueError("they need two images (not near-duplicates of each other) of every class")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    splits = list(splitter.split(np.zeros(len(y)), y, groups))
    def fit(job):  # one head on one fold's training part; single-threaded BLAS, jobs side by side
        kind, (train, held) = job
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1 / L2, max_iter=1000))
        model.fit(features[kind][train], y[train])
        return kind, held, model.classes_, model.predict_proba(features[kind][held])

    heads = {kind: np.zeros((len(y), classes)) for kind in SOURCES}
    with threadpool_limits(1), ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for kind, held, seen, p in pool.map(fit, [(kind, split) for kind in SOURCES for split in splits]):
            heads[kind][np.ix_(held, seen)] = p
    heads["knn"] = _neighbour_vote(unit_rows(features[NEIGHBOUR_SOURCE]), y, classes, splits)
    accuracy = {k: round(float((p.argmax(1) == y).mean()), 4) for k, p in heads.items()}
    return np.mean(list(heads.values()), axis=0), folds, accuracy


def _neighbour_vote(x: np.ndarray, y: np.ndarray, classes: int, splits) -> np.ndarray:
    p = np.full((len(y), classes), 1e-3)
    for train, held in splits:
        sims = x[held] @ x[train].T
        k = min(NEIGHBOURS, len(train))
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weight = np.exp(10 * np.take_along_axis(sims, near, axis=1))  # closer neighbours count more
        np.add.at(p, (np.repeat(held, k), y[train][near].ravel()), weight.ravel())
    return p / p.sum(axis=1, keepdims=True)


def find_label_issues(features: dict[str, np.ndarray], y: np.ndarray, classes: int, groups: list[str],
                      seed: int) -> LabelIssues:
    from cleanlab.filter import find_label_issues as cleanlab_find
    from cleanlab.rank import get_label_quality_scores

    probabilities, folds, accuracy = out_of_fold(features, y, classes, groups, seed)
    # n_jobs=1: cleanlab's default forks a multiprocessing pool, and a fork of a process that runs TensorFlow's
    # threads can hang; one such pool child, orphaned, kept a test worker's pipe open and stalled the whole run.
    flagged = cleanlab_find(y, probabilities, filter_by=FILTER, n_jobs=1)
    quality = get_label_quality_scores(y, probabilities, method="self_confidence")
    return LabelIssues(np.asarray(flagged, bool), 1.0 - quality, probabilities.argmax(1), probabilities, y, folds,
                       accuracy)
