"""Prediction sets with a stated coverage: split conformal prediction on held-out answers (numpy only).

    fit_sets         held-out probabilities and labels -> the record labels.json keeps ("sets"): the score,
                     the held-out scores of the true classes (sorted; per class with by_class), the coverage
    thresholds       a record and a coverage -> the score at or below which a class joins the set
    prediction_sets  probabilities (N, K) and a record -> (N, K) booleans: each image's set
    sets_at          the same at thresholds computed once (a server answering image after image)
    set_summary      realised coverage and mean set size of sets against true labels, with intervals

The scores, each a class's nonconformity for one image:
    lac  1 - p(class): the plain score; sets are the classes at or above one probability (Sadinle et al.)
    aps  the probability mass of every class at least as probable as this one (Romano et al.): adaptive,
         larger sets for harder images
`auto` keeps whichever gives the smaller mean set size on held-out answers (the two halves of the
calibration images, each scored with the threshold fitted on the other half).

With n held-out scores, the threshold for coverage c is the ceil((n + 1) c)-th smallest (infinite when that
exceeds n): for an exchangeable new image, P(true class in its set) >= c (Vovk et al.; Angelopoulos and Bates
2021). `by_class` (Mondrian, for imbalanced data) fits one threshold per true class, so the coverage holds
for each class. A set is never empty: where no class's score is under the threshold, the set holds the
most probable class (which can only raise the coverage).
"""

from __future__ import annotations

import math

import numpy as np

from inceptune.errors import UserError
from inceptune.evaluation.intervals import fold_interval, wilson_interval
from inceptune.settings.schema import SET_SCORES

SCORES = tuple(s for s in SET_SCORES if s != "auto")  # ("lac", "aps")


def check_coverage(coverage: float | None) -> None:
    """A coverage asked for at prediction time: None (the run's own) or strictly between 0 and 1."""
    if coverage is not None and not 0.0 < float(coverage) < 1.0:
        raise UserError(f"--coverage must be between 0 and 1, such as 0.9 or 0.95; got {coverage:g}.")


def class_scores(probs: np.ndarray, score: str) -> np.ndarray:
    """(N, K) nonconformity of every class of every image."""
    probs = np.asarray(probs, dtype="float64")
    if score == "lac":
        return 1.0 - probs
    if score == "aps":  # mass of the classes at least as probable: sum over j with p_j >= p_k
        order = np.argsort(-probs, axis=1, kind="stable")
        ranked = np.take_along_axis(probs, order, axis=1)
        cumulative = np.cumsum(ranked, axis=1)
        out = np.empty_like(probs)
        np.put_along_axis(out, order, cumulative, axis=1)
        return out
    raise ValueError(f"unknown set score {score!r}; one of {', '.join(SCORES)}")


def quantile(sorted_scores: np.ndarray, coverage: float) -> float:
    """The ceil((n + 1) coverage)-th smallest of n sorted held-out scores; infinite past the largest."""
    n = len(sorted_scores)
    k = math.ceil((n + 1) * coverage - 1e-12)
    return float("inf") if k > n or n == 0 else float(sorted_scores[max(k, 1) - 1])


def _true_scores(probs: np.ndarray, y: np.ndarray, score: str) -> np.ndarray:
    return class_scores(probs, score)[np.arange(len(y)), y]


def _quantiles(scores: np.ndarray, classes: np.ndarray | None, k: int, coverage: float) -> np.ndarray:
    """The threshold of each of `k` classes: one over all `scores`, or one per class (`classes`: each score's)."""
    if classes is None:
        return np.full(k, quantile(np.sort(scores), coverage))
    return np.array([quantile(np.sort(scores[classes == c]), coverage) for c in range(k)])


def raw_sets(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Class k is in an image's set when its score is at most threshold k (possibly no class at all)."""
    return scores <= thresholds[None, :] + 1e-12


def _non_empty(sets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    sets = sets.copy()
    empty = ~sets.any(axis=1)
    sets[np.flatnonzero(empty), np.asarray(probs)[empty].argmax(axis=1)] = True
    return sets


def _mean_size_on_halves(probs: np.ndarray, y: np.ndarray, score: str, coverage: float, by_class: bool,
                         seed: int) -> float:
    """Mean set size of each half of the images, at the threshold fitted on the other half."""
    order = np.random.default_rng(seed).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2:])
    k = probs.shape[1]
    sizes = []
    for fit_on, score_on in (halves, halves[::-1]):
        t = _quantiles(_true_scores(probs[fit_on], y[fit_on], score), y[fit_on] if by_class else None, k, coverage)
        sizes += list(sets_at(probs[score_on], score, t).sum(axis=1))
    return float(np.mean(sizes))


def fit_sets(probs: np.ndarray, y: np.ndarray, coverage: float, score: str = "auto", by_class: bool = False,
             seed: int = 0, fitted_on: str = "held-out answers") -> dict:
    """The record of prediction sets fitted on held-out `probs` (N, K) with true classes `y`."""
    probs, y = np.asarray(probs, dtype="float64"), np.asarray(y, dtype=int)
    chosen_by = None
    if score == "auto":
        sizes = {s: _mean_size_on_halves(probs, y, s, coverage, by_class, seed) for s in SCORES}
        score = min(SCORES, key=lambda s: (sizes[s], SCORES.index(s)))
        chosen_by = {"mean_set_size_on_halves": {s: round(v, 4) for s, v in sizes.items()}}
    true = _true_scores(probs, y, score)
    order = np.argsort(true, kind="stable")
    record = {"score": score, "coverage": coverage, "by_class": by_class, "fitted_on": fitted_on,
              "images": int(len(y)), "scores": [round(float(v), 7) for v in true[order]]}
    if by_class:
        record["score_classes"] = [int(c) for c in y[order]]
    if chosen_by:
        record["chosen_by"] = chosen_by
    return record


def thresholds(record: dict, k: int, coverage: float | None = None) -> np.ndarray:
    """The threshold of each of the `k` classes at `coverage` (default: the record's)."""
    classes = np.asarray(record["score_classes"], dtype=int) if record.get("by_class") else None
    return _quantiles(np.asarray(record["scores"], dtype="float64"), classes, k,
                      record["coverage"] if coverage is None else coverage)


def sets_at(probs: np.ndarray, score: str, at: np.ndarray) -> np.ndarray:
    """(N, K) booleans: each image's set at the thresholds `at` (one per class), never empty."""
    probs = np.atleast_2d(np.asarray(probs, dtype="float64"))
    return _non_empty(raw_sets(class_scores(probs, score), at), probs)


def prediction_sets(probs: np.ndarray, record: dict, coverage: float | None = None) -> np.ndarray:
    """(N, K) booleans: each image's prediction set at `coverage` (default: the record's), never empty."""
    probs = np.atleast_2d(np.asarray(probs, dtype="float64"))
    return sets_at(probs, record["score"], thresholds(record, probs.shape[1], coverage))


def set_summary(sets: np.ndarray, y: np.ndarray, coverage: float, score: str) -> dict:
    """Realised coverage (Wilson interval) and mean set size (t interval) of `sets` against true classes `y`."""
    y = np.asarray(y, dtype=int)
    covered = sets[np.arange(len(y)), y]
    sizes = sets.sum(axis=1)
    size_interval = fold_interval(sizes.astype(float).tolist()) if len(y) > 1 else None
    return {"coverage_target": coverage, "score": score, "images": int(len(y)),
            "coverage": float(covered.mean()) if len(y) else None,
            "coverage_ci95": wilson_interval(int(covered.sum()), int(len(y))),
            "mean_size": float(sizes.mean()) if len(y) else None, "mean_size_ci95": size_interval,
            "sizes": {str(s): int((sizes == s).sum()) for s in range(1, sets.shape[1] + 1) if (sizes == s).any()}}
