"""95% intervals of evaluation metrics: how far each number could move on another sample of images.

A proportion (accuracy, top-k accuracy, subset accuracy) gets the Wilson score interval (scipy): it stays
inside [0, 1] and is honest on a dozen images, where the normal approximation is not. The other metrics
are not counts of successes, so theirs is a seeded percentile bootstrap over images: draw the images with
replacement RESAMPLES times, recompute the metric on each draw, and take the 2.5th and 97.5th
percentiles; a draw on which a metric is undefined (ROC AUC with a class missing) is skipped. A
cross-validation summary's interval is Student's t over the fold values.

Why the bootstrap does not call scikit-learn on each draw: its input checks cost 7-10 ms per draw for
the scalars of 500 images (the arithmetic is microseconds), so 1000 draws would take 7-10 s. Each
metric is instead computed for a block of draws at once from how often each image was drawn: precision,
recall and F1 from per-class counts, ROC AUC and average precision from one sort of each score column,
log loss and ECE from per-image terms (ECE in metrics.py's own bins). tests/test_intervals.py holds
every one equal to scikit-learn (and ECE to metrics.calibration) on explicit draws, ties and missing
classes included.

Every interval is a two-element list [low, high], or None where its metric is None.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

CONFIDENCE = 0.95
# Draws of the bootstrap. Every interval together, on one core: 500 images x 5 classes about 0.03 s,
# 2000 x 10 about 0.2 s, 10000 x 100 about 7 s (ROC AUC and average precision: a cumulative sum per class).
RESAMPLES = 1000
SEED = 0
# Image x draw cells per block of draws: bounds the per-draw counts at 16 MB of float64.
_BLOCK_CELLS = 2_000_000
# multilabel.py clips multi-label probabilities to this before its log loss.
_MULTILABEL_EPS = 1e-7

Interval = list[float]  # [low, high]
# counts (images, draws): how often each image was drawn -> each metric's value per draw, NaN where undefined.
Statistics = Callable[[np.ndarray], dict[str, np.ndarray]]


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval | None:
    """Wilson score interval of `successes` out of `trials` (None for no trials)."""
    from scipy.stats import binomtest

    if trials <= 0:
        return None
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def accuracy_interval(accuracy: float, images: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson interval of an accuracy measured on `images` images, for callers that kept only the ratio."""
    low, high = wilson_interval(round(accuracy * images), images, confidence)
    return low, high


def containing(interval: Interval | None, value: float | None) -> Interval | None:
    """The interval widened to hold its own point estimate (None without either).

    A percentile bootstrap of a skewed or discrete metric can leave the estimate just outside (an AUC near
    1 whose draws missing a class are skipped; percentiles of a handful of distinct values), and a table
    must never show a number outside its own interval: so low = min(low, value), high = max(high, value).
    """
    if interval is None or value is None:
        return None
    return [min(interval[0], value), max(interval[1], value)]


def fold_interval(values: list[float], confidence: float = CONFIDENCE) -> Interval | None:
    """Student's t interval of the mean of per-fold values: mean ± t(0.975, n - 1) · std / sqrt(n).

    None for one fold (no spread to measure). Not clipped to a metric's range: it speaks of the mean
    over folds, and a mean of 0.98 with a wide spread honestly reaches past 1.
    """
    from scipy.stats import t

    n = len(values)
    if n < 2:
        return None
    mean = float(np.mean(values))
    half = float(t.ppf((1 + confidence) / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n))
    return [mean - half, mean + half]


def bootstrap_intervals(statistics: Statistics, images: int, values: dict[str, float | None], *,
                        resamples: int = RESAMPLES, seed: int = SEED,
                        confidence: float = CONFIDENCE) -> dict[str, Interval | None]:
    """Percentile bootstrap interval of each metric in `values` (name -> point estimate, or None).

    `statistics(counts)` gets a block of draws as counts (images, draws) drawn by numpy's
    default_rng(seed), so the same input always gives the same intervals. A metric whose estimate is
    None, or whose every draw is undefined, gets None.
    """
    names = [name for name, value in values.items() if value is not None]
    draws: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if names and images:
        rng, block = np.random.default_rng(seed), max(1, _BLOCK_CELLS // images)
        for start in range(0, resamples, block):
            found = statistics(counts_of(rng.integers(0, images, size=(min(block, resamples - start), images))))
            for name in names:
                draws[name].append(np.asarray(found[name], float))
    tail = 100 * (1 - confidence) / 2
    intervals: dict[str, Interval | None] = dict.fromkeys(values)
    for name in names:
        defined = np.concatenate(draws[name]) if draws[name] else np.empty(0)
        defined = defined[np.isfinite(defined)]
        if len(defined):
            low, high = np.percentile(defined, [tail, 100 - tail])
            intervals[name] = containing([float(low), float(high)], values[name])
    return intervals


def classification_intervals(y_true: np.ndarray, probs: np.ndarray, values: dict[str, float | None],
                             ece_bins: np.ndarray) -> dict[str, Interval | None]:
    """Bootstrap intervals of the single-label metrics in `values` (metrics.py's names and point estimates).

    `ece_bins` is each image's calibration bin (metrics.calibration_bin of its top-1 confidence).
    """
    return bootstrap_intervals(classification_statistics(y_true, probs, ece_bins), len(y_true), values)


def classification_statistics(y_true: np.ndarray, probs: np.ndarray, ece_bins: np.ndarray) -> Statistics:
    """balanced_accuracy, macro_precision, macro_recall, macro_f1, weighted_f1, roc_auc, average_precision,
    log_loss and ece of each draw, each as metrics.py defines it.

    Macro averages are over every class (an absent one counts 0); ROC AUC and average precision are the
    positive class's for two classes and macro one-vs-rest for more, ROC AUC NaN when a class is missing.
    """
    y_true, probs = np.asarray(y_true, int), np.asarray(probs, float)
    images, classes = probs.shape
    y_pred = probs.argmax(axis=1)
    truth, guessed = np.eye(classes)[y_true], np.eye(classes)[y_pred]
    hits = truth * (y_pred == y_true)[:, None]
    eps = np.finfo(probs.dtype).eps  # scikit-learn's log_loss clips probabilities to [eps, 1 - eps]
    losses = -np.log(np.clip(probs[np.arange(images), y_true], eps, 1 - eps))
    # ECE: over the bins, |correct answers - confidences| summed in the bin, over the images.
    ece_bins = np.asarray(ece_bins, int)
    gaps = np.eye(ece_bins.max() + 1)[ece_bins] * ((y_pred == y_true) - probs.max(axis=1))[:, None]
    rankings = [_Ranking(probs[:, c], y_true == c) for c in ([1] if classes == 2 else range(classes))]

    def statistics(counts: np.ndarray) -> dict[str, np.ndarray]:
        support, predicted, tp = truth.T @ counts, guessed.T @ counts, hits.T @ counts  # (classes, draws)
        precision, recall, f1 = _ratio(tp, predicted), _ratio(tp, support), _ratio(2 * tp, support + predicted)
        present = support > 0
        ranked = [ranking.at(counts) for ranking in rankings]
        return {
            "balanced_accuracy": (recall * present).sum(axis=0) / present.sum(axis=0),
            "macro_precision": precision.mean(axis=0), "macro_recall": recall.mean(axis=0),
            "macro_f1": f1.mean(axis=0), "weighted_f1": (f1 * support).sum(axis=0) / images,
            "roc_auc": np.mean([auc for auc, _ in ranked], axis=0),
            "average_precision": np.mean([ap for _, ap in ranked], axis=0),
            "log_loss": losses @ counts / images,
            "ece": np.abs(gaps.T @ counts).sum(axis=0) / images,
        }

    return statistics


def multilabel_intervals(y_true: np.ndarray, probs: np.ndarray, thresholds: float | np.ndarray,
                         values: dict | None = None) -> dict[str, Interval | None]:
    """Intervals of multilabel.py's overall metrics, an answer being yes where probs >= thresholds.

    `thresholds` is one threshold for all labels or an array of one per label. `values` are the point
    estimates the intervals must contain (multilabel_metrics' result); without them they are computed
    here. subset_accuracy (images with every label right) is a proportion: Wilson. The rest
    (multilabel_statistics) are bootstrapped over images.
    """
    y_true, y_pred = np.asarray(y_true, int), _answers(y_true, probs, thresholds)
    images = len(y_true)
    statistics = multilabel_statistics(y_true, probs, thresholds)
    if values is None:
        values = {name: float(v[0]) for name, v in statistics(np.ones((images, 1))).items()}
        values["subset_accuracy"] = float(np.mean((y_true == y_pred).all(axis=1))) if images else None
        if np.isnan(values["label_ranking_average_precision"]):
            values["label_ranking_average_precision"] = None
    names = ("hamming_loss", "f1_micro", "f1_macro", "label_ranking_average_precision", "loss")
    correct = int((y_true == y_pred).all(axis=1).sum())
    return {"subset_accuracy": containing(wilson_interval(correct, images), values.get("subset_accuracy")),
            **bootstrap_intervals(statistics, images, {name: values.get(name) for name in names})}


def multilabel_statistics(y_true: np.ndarray, probs: np.ndarray, thresholds: float | np.ndarray) -> Statistics:
    """hamming_loss, f1_micro, f1_macro, label_ranking_average_precision (NaN when no image has a label) and
    loss (the mean over labels of their binary log loss) of each draw, as multilabel.py defines them."""
    y_true, probs = np.asarray(y_true, int), np.asarray(probs, float)
    y_pred = _answers(y_true, probs, thresholds)
    images, labels = y_true.shape
    tp, fp, fn = y_true * y_pred, (1 - y_true) * y_pred, y_true * (1 - y_pred)
    clipped = np.clip(probs, _MULTILABEL_EPS, 1 - _MULTILABEL_EPS)
    # Every label has the same images, so the mean of the labels' log losses is the mean of the images' means.
    losses = -(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped)).mean(axis=1)
    ranking, relevant = _label_ranking_precision(y_true, probs), y_true.sum(axis=1)

    def statistics(counts: np.ndarray) -> dict[str, np.ndarray]:
        tps, fps, fns = tp.T @ counts, fp.T @ counts, fn.T @ counts  # (labels, draws)
        return {
            "hamming_loss": (fps + fns).sum(axis=0) / (images * labels),
            "f1_micro": _ratio(2 * tps.sum(axis=0), (2 * tps + fps + fns).sum(axis=0)),
            "f1_macro": _ratio(2 * tps, 2 * tps + fps + fns).mean(axis=0),
            "label_ranking_average_precision": np.where(relevant @ counts > 0, ranking @ counts / images, np.nan),
            "loss": losses @ counts / images,
        }

    return statistics


def _answers(y_true: np.ndarray, probs: np.ndarray, thresholds: float | np.ndarray) -> np.ndarray:
    """The yes/no answers of a multi-label classifier, after checking the shapes."""
    y_true, probs, thresholds = np.asarray(y_true), np.asarray(probs, float), np.asarray(thresholds, float)
    if y_true.ndim != 2 or y_true.shape != probs.shape:
        raise ValueError(f"y_true and probs must both be (images, labels); got {y_true.shape} and {probs.shape}.")
    if thresholds.shape not in ((), (probs.shape[1],)):
        raise ValueError(f"thresholds must be one number or one per label ({probs.shape[1]}); "
                         f"got shape {thresholds.shape}.")
    return (probs >= thresholds).astype(int)


def counts_of(rows: np.ndarray) -> np.ndarray:
    """rows (draws, images) of drawn image indices -> counts (images, draws): how often each image was drawn."""
    draws, images = rows.shape
    flat = (rows * draws + np.arange(draws)[:, None]).ravel()
    return np.bincount(flat, minlength=images * draws).reshape(images, draws).astype(float)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    shape = np.broadcast_shapes(np.shape(numerator), np.shape(denominator))
    return np.divide(numerator, denominator, out=np.zeros(shape), where=np.asarray(denominator) != 0)


class _Ranking:
    """One score column sorted once (highest first), so that each draw's ROC AUC and average precision are
    cumulative sums. Images of equal score share one threshold, as in scikit-learn's curves."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray):
        self.order = np.argsort(-scores, kind="mergesort")
        ranked = scores[self.order]
        group_end = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last position of each tie group
        group = np.repeat(np.arange(len(group_end)), np.diff(np.r_[-1, group_end]))
        self.positions = np.flatnonzero(positive[self.order])  # sorted positions of the positive images
        self.end = group_end[group[self.positions]]  # each positive's tie group: its last position ...
        self.before = self.end - np.diff(np.r_[-1, group_end])[group[self.positions]]  # ... and the one before it
        # the positives counted at those positions (through the position), found among the positives' own sums
        self.positives_to_end = np.searchsorted(self.positions, self.end, side="right")
        self.positives_before = np.searchsorted(self.positions, self.before, side="right")

    def at(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ROC AUC (NaN without positives or negatives) and average precision (0 without positives) per draw."""
        images = len(counts)
        drawn = np.cumsum(counts[self.order], axis=0)  # (images, draws): weight at or above each position
        pos = counts[self.order[self.positions]]  # (positives, draws)
        pos_cum = np.vstack([np.zeros((1, counts.shape[1])), np.cumsum(pos, axis=0)])  # positive weight up to k
        tp_end, tp_before = pos_cum[self.positives_to_end], pos_cum[self.positives_before]
        drawn_end = drawn[self.end]
        drawn_before = np.where(self.before[:, None] >= 0, drawn[np.maximum(self.before, 0)], 0.0)
        positives = pos_cum[-1]
        negatives = images - positives
        # Each positive beats the negatives below its tie group and half of those inside it (trapezoids).
        negatives_above = ((drawn_end - tp_end) + (drawn_before - tp_before)) / 2
        pairs = positives * negatives
        auc = np.divide((pos * (negatives - negatives_above)).sum(axis=0), pairs, out=np.full(len(pairs), np.nan),
                        where=pairs > 0)
        # Each positive adds its share of recall at the precision of its tie group's threshold.
        ap = _ratio((pos * _ratio(tp_end, drawn_end)).sum(axis=0), positives)
        return auc, ap


def _label_ranking_precision(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each image's label-ranking average precision (scikit-learn's metric is their mean).

    For each true label: the share of true labels among the labels scored at least as high. An image with
    no true label, or with all of them, scores 1, as in scikit-learn.
    """
    images, labels = y_true.shape
    scores = np.ones(images)
    step = max(1, _BLOCK_CELLS // max(1, labels * labels))
    for start in range(0, images, step):
        y, p = y_true[start:start + step], probs[start:start + step]
        above = p[:, None, :] >= p[:, :, None]  # [i, j, k]: label k scores at least as high as label j
        rank, true_rank = above.sum(axis=2), (above & (y[:, None, :] == 1)).sum(axis=2)
        relevant = y.sum(axis=1)
        mean = (y * true_rank / rank).sum(axis=1) / np.maximum(relevant, 1)
        scores[start:start + step] = np.where((relevant > 0) & (relevant < labels), mean, 1.0)
    return scores
