"""Calibration: a temperature fitted on held-out answers, folded into the output layer; thresholds per label."""

import keras
import numpy as np
import pytest
from scipy.special import expit, softmax

from inceptune.evaluation.calibration import at_temperature, best_thresholds, fit_temperature
from inceptune.evaluation.metrics import calibration
from inceptune.evaluation.multilabel import multilabel_metrics
from inceptune.inference.ranking import answer
from conftest import tiny_classifier
from inceptune.models.classifier import class_probabilities


def _overconfident(n=4000, classes=5, temperature=3.0, seed=0):
    """Labels drawn from softmax(z), answered as softmax(z * temperature): too sure by exactly `temperature`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    truth = softmax(z, axis=1)
    y = np.array([rng.choice(classes, p=row) for row in truth])
    return softmax(z * temperature, axis=1), y


def test_the_fitted_temperature_undoes_a_known_overconfidence_and_keeps_every_argmax():
    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    assert t == pytest.approx(3.0, rel=0.1)
    fixed = at_temperature(probs, t)
    assert np.array_equal(fixed.argmax(axis=1), probs.argmax(axis=1))
    assert calibration(y, fixed)[0] < calibration(y, probs)[0] / 2
    assert np.allclose(at_temperature(fixed, 1 / t), probs, atol=1e-9)  # 1/T gives the uncalibrated answers back


def test_two_classes_as_one_sigmoid_scale_like_the_folded_layer():
    z = np.linspace(-6, 6, 25)
    probs = class_probabilities(expit(z)[:, None])  # the binary model's (N, 1) output as (N, 2)
    assert np.allclose(at_temperature(probs, 2.5)[:, 1], expit(z / 2.5), atol=1e-9)
    assert np.allclose(at_temperature(expit(z)[:, None], 2.5, multilabel=True)[:, 0], expit(z / 2.5), atol=1e-9)


@pytest.mark.parametrize("num_classes,multilabel", [(5, False), (2, False), (3, True)])
def test_folding_the_temperature_into_the_output_layer_gives_the_calibrated_answers(num_classes, multilabel):
    keras.utils.set_random_seed(0)
    classifier = tiny_classifier(num_classes, multilabel)
    images = np.random.default_rng(1).uniform(0, 255, (6, 40, 40, 3)).astype("float32")
    before = class_probabilities(classifier.model.predict_on_batch(images), multilabel)
    classifier.fold_temperature(0.4)  # sharper, so the change is large
    after = class_probabilities(classifier.model.predict_on_batch(images), multilabel)
    assert np.allclose(after, at_temperature(before, 0.4, multilabel), atol=1e-5)
    assert not np.allclose(after, before, atol=1e-3)
    assert np.array_equal(after.argmax(axis=1), before.argmax(axis=1))


def test_thresholds_maximise_each_labels_f1_and_never_lose_to_one_half():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (300, 3))
    probs = np.clip(np.where(y == 1, 0.35, 0.1) + rng.normal(0, 0.08, y.shape), 0, 1)  # label 0: positives sit low
    probs[:, 1] = np.where(y[:, 1] == 1, 0.9, 0.1)  # label 1: already perfect at 0.5
    y[:, 2] = 0  # label 2: no positives to choose from
    t = best_thresholds(y, probs)
    assert t[0] < 0.5 and t[1] == 0.5 and t[2] == 0.5
    classes = ["a", "b", "c"]
    chosen, plain = multilabel_metrics(y, probs, classes, t), multilabel_metrics(y, probs, classes)
    assert chosen["per_label"]["a"]["f1"] > 0.8 > plain["per_label"]["a"]["f1"]
    assert chosen["f1_macro"] >= plain["f1_macro"] and chosen["thresholds"]["a"] == pytest.approx(t[0])


def test_answers_use_each_labels_threshold():
    probs = np.array([0.3, 0.6, 0.1])
    assert answer(["a", "b", "c"], probs, 2, [0.25, 0.5, 0.5])["labels"] == ["a", "b"]
    assert answer(["a", "b", "c"], probs, 2, [0.5, 0.5, 0.5])["labels"] == ["b"]
    assert "labels" not in answer(["a", "b", "c"], probs, 2, None)  # one class per image: no yes/no answers


def test_a_tiny_or_perfectly_answered_val_split_does_not_drive_the_temperature_to_a_bound():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    t = fit_temperature(probs, np.array([0, 1, 0, 1]))  # all right: without the prior, T would run to 0.05
    assert 0.3 < t < 1.0
