"""95% intervals: Wilson for proportions, a seeded bootstrap for the rest, t over folds; small synthetic arrays."""

import warnings

import numpy as np
import pytest
from scipy.stats import t
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize

from inceptune.evaluation.intervals import (
    classification_statistics,
    counts_of,
    multilabel_intervals,
    multilabel_statistics,
)
from inceptune.evaluation.metrics import (
    SCALARS,
    calibration,
    calibration_bin,
    classification_metrics,
    summarize_folds,
    top_k_name,
)


def predictions(images: int, classes: int, accuracy: float | None = None, seed: int = 0):
    """Labels and softmax probabilities; with `accuracy`, exactly that share of images is right."""
    rng = np.random.default_rng(seed)
    y = np.arange(images) % classes
    logits = rng.normal(size=(images, classes))
    logits[np.arange(images), y] += 1.5
    if accuracy is not None:
        right = np.zeros(images, bool)
        right[rng.permutation(images)[:round(accuracy * images)]] = True
        logits[np.arange(images), y] = np.where(right, 10.0, -10.0)
    probs = np.exp(logits)
    return y, probs / probs.sum(axis=1, keepdims=True)


def width(interval) -> float:
    return interval[1] - interval[0]


@pytest.mark.parametrize("classes", [2, 3, 6])
def test_every_scalar_metric_has_an_interval_that_contains_it(classes):
    y, probs = predictions(40, classes)
    m = classification_metrics(y, probs, [f"c{i}" for i in range(classes)])
    top_k = [top_k_name(k) for k in m["top_k_accuracy"] if k != "1"]
    assert list(m["ci95"]) == [*SCALARS, *top_k]
    for name in SCALARS:
        assert m[name] is not None
        low, high = m["ci95"][name]
        assert low <= m[name] <= high and low < high, name
    for k in m["top_k_accuracy"]:
        if k != "1":
            low, high = m["ci95"][top_k_name(k)]
            assert low <= m["top_k_accuracy"][k] <= high


def test_twelve_right_of_twelve_is_far_from_certain():
    y, probs = predictions(12, 3, accuracy=1.0)
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == 1.0
    low, high = m["ci95"]["accuracy"]
    assert high == 1.0 and low == pytest.approx(0.7575, abs=1e-3)  # Wilson for 12/12
    assert width(m["ci95"]["accuracy"]) > 0.2


def test_the_bootstrap_is_seeded():
    y, probs = predictions(60, 4)
    first, again = classification_metrics(y, probs, list("abcd")), classification_metrics(y, probs, list("abcd"))
    assert first["ci95"] == again["ci95"]


def test_intervals_narrow_with_more_images():
    few = classification_metrics(*predictions(50, 4, accuracy=0.8), list("abcd"))
    many = classification_metrics(*predictions(2000, 4, accuracy=0.8), list("abcd"))
    assert few["accuracy"] == many["accuracy"] == 0.8
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss", "ece"):
        assert width(many["ci95"][name]) < width(few["ci95"][name]) / 3, name  # about sqrt(40) narrower


def test_an_undefined_metric_has_no_interval():
    y, probs = predictions(30, 3)
    m = classification_metrics(y[y != 2], probs[y != 2], ["a", "b", "c"])  # class c absent: no one-vs-rest AUC
    assert m["roc_auc"] is None and m["ci95"]["roc_auc"] is None
    assert m["ci95"]["average_precision"] is not None and m["ci95"]["accuracy"] is not None


def test_each_draws_metrics_are_scikit_learns():
    """The vectorised draws compute what scikit-learn computes on the drawn images: ties and absent classes too."""
    rng = np.random.default_rng(1)
    for classes in (2, 4):
        y, probs = predictions(30, classes, seed=classes)
        probs[:15] = rng.dirichlet(np.ones(classes), size=4)[rng.integers(0, 4, size=15)]  # tied scores
        rows = rng.integers(0, 30, size=(40, 30))
        rows[0] = rng.choice(np.flatnonzero(y != 0), size=30)  # class 0 absent
        found = classification_statistics(y, probs, calibration_bin(probs.max(axis=1)))(counts_of(rows))
        labels = list(range(classes))
        for j, r in enumerate(rows):
            t_, p_ = y[r], probs[r]
            pred = p_.argmax(axis=1)
            with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
                warnings.simplefilter("ignore")
                assert found["balanced_accuracy"][j] == pytest.approx(balanced_accuracy_score(t_, pred))
            assert found["macro_precision"][j] == pytest.approx(
                precision_score(t_, pred, labels=labels, average="macro", zero_division=0))
            assert found["macro_recall"][j] == pytest.approx(
                recall_score(t_, pred, labels=labels, average="macro", zero_division=0))
            assert found["macro_f1"][j] == pytest.approx(f1_score(t_, pred, labels=labels, average="macro",
                                                                  zero_division=0))
            assert found["weighted_f1"][j] == pytest.approx(f1_score(t_, pred, labels=labels, average="weighted",
                                                                     zero_division=0))
            assert found["log_loss"][j] == pytest.approx(log_loss(t_, p_, labels=labels))
            assert found["ece"][j] == pytest.approx(calibration(t_, p_)[0])
            if classes == 2:
                auc = roc_auc_score(t_, p_[:, 1]) if len(set(t_)) == 2 else np.nan
                ap = average_precision_score(t_, p_[:, 1]) if t_.any() else 0.0
            else:
                present = len(set(t_)) == classes
                auc = roc_auc_score(t_, p_, multi_class="ovr", labels=labels) if present else np.nan
                with warnings.catch_warnings():  # an absent class: "No positive class found", its AP is 0
                    warnings.simplefilter("ignore")
                    ap = average_precision_score(label_binarize(t_, classes=labels), p_, average="macro")
            assert found["roc_auc"][j] == pytest.approx(auc, nan_ok=True)
            assert found["average_precision"][j] == pytest.approx(ap)


def test_fold_summary_has_a_t_interval_of_the_mean():
    values = [0.8, 0.9, 0.85, 0.7]
    s = summarize_folds([{"accuracy": v, "roc_auc": 0.9 if i == 0 else None} for i, v in enumerate(values)])
    half = t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert s["accuracy"]["ci95"] == pytest.approx([np.mean(values) - half, np.mean(values) + half])
    assert s["accuracy"]["ci95"][0] < s["accuracy"]["mean"] < s["accuracy"]["ci95"][1]
    assert s["roc_auc"]["ci95"] is None  # one fold: no spread to measure


def multilabel_data(images: int = 40, labels: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random((images, labels)) < 0.4).astype(int)
    probs = (0.3 * y + 0.7 * rng.random((images, labels))).round(2)  # some ties
    return y, probs


def test_multilabel_intervals_with_a_threshold_per_label():
    y, probs = multilabel_data()
    thresholds = np.array([0.3, 0.5, 0.6, 0.7])
    pred = (probs >= thresholds).astype(int)
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    values = {"subset_accuracy": float((pred == y).all(axis=1).mean()), "hamming_loss": hamming_loss(y, pred),
              "f1_micro": f1_score(y, pred, average="micro", zero_division=0),
              "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
              "label_ranking_average_precision": label_ranking_average_precision_score(y, probs),
              "loss": np.mean([log_loss(y[:, i], clipped[:, i], labels=[0, 1]) for i in range(4)])}
    ci = multilabel_intervals(y, probs, thresholds)
    assert set(ci) == set(values)
    for name, value in values.items():
        assert ci[name][0] <= value <= ci[name][1] and ci[name][0] < ci[name][1], name
    assert multilabel_intervals(y, probs, thresholds, values=values) == ci  # the same estimates, the same draws
    assert multilabel_intervals(y, probs, 0.5) == multilabel_intervals(y, probs, np.full(4, 0.5))
    assert multilabel_intervals(y, probs, 0.5) != ci
    with pytest.raises(ValueError, match="one per label"):
        multilabel_intervals(y, probs, [0.5, 0.5])
    no_labels = multilabel_intervals(np.zeros_like(y), probs, 0.5)
    assert no_labels["label_ranking_average_precision"] is None and no_labels["f1_micro"] is not None


def test_each_multilabel_draw_is_scikit_learns():
    y, probs = multilabel_data(30, 5, seed=3)
    thresholds = np.array([0.2, 0.4, 0.5, 0.6, 0.8])
    rows = np.random.default_rng(2).integers(0, 30, size=(25, 30))
    found = multilabel_statistics(y, probs, thresholds)(counts_of(rows))
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    for j, r in enumerate(rows):
        t_, p_, pred = y[r], probs[r], (probs[r] >= thresholds).astype(int)
        assert found["hamming_loss"][j] == pytest.approx(hamming_loss(t_, pred))
        assert found["f1_micro"][j] == pytest.approx(f1_score(t_, pred, average="micro", zero_division=0))
        assert found["f1_macro"][j] == pytest.approx(f1_score(t_, pred, average="macro", zero_division=0))
        lrap = label_ranking_average_precision_score(t_, p_)
        assert found["label_ranking_average_precision"][j] == pytest.approx(lrap)
        assert found["loss"][j] == pytest.approx(np.mean([log_loss(t_[:, i], clipped[r, i], labels=[0, 1])
                                                          for i in range(5)]))
