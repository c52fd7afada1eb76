"""The checks an int8 export must pass before it is kept (deploy/accuracy.py, deploy/quantize.py), on given
outputs: the paired accuracy test, every output against FP32, and the refusal of a collapsed model."""

from __future__ import annotations

import numpy as np
import pytest

from inceptune.deploy.accuracy import HeldOut, accuracy_check, outputs_check
from inceptune.deploy.quantize import _collapsed


def _held(truth) -> HeldOut:
    truth = np.asarray(truth)
    return HeldOut("val", np.zeros((len(truth), 2, 2, 3), "float32"), truth, multilabel=False)


def _probs(classes, confidence=0.9, num_classes=2) -> np.ndarray:
    out = np.full((len(classes), num_classes), (1 - confidence) / (num_classes - 1))
    out[np.arange(len(classes)), classes] = confidence
    return out


def test_mcnemar_refuses_int8_that_loses_photos_fp32_gets_right_even_within_the_drop_allowed():
    truth = np.array([0, 1] * 100)
    fp32 = [_probs(truth)]
    worse = truth.copy()
    worse[:12] = 1 - worse[:12]  # 12 photos only FP32 gets right, none the other way: p = 2 / 2**12
    check = accuracy_check(_held(truth), fp32, [_probs(worse)], max_drop=0.10, method="post-training",
                           calibration_images=300)
    assert check["drop"] == pytest.approx(0.06) and check["drop"] <= check["max_drop"]
    assert check["mcnemar"] == {"only_fp32_right": 12, "only_quantized_right": 0,
                                "p_value": pytest.approx(2 / 2 ** 12), "alpha": 0.05}
    assert not check["passed"]
    # discordant photos both ways, as many each: no evidence either is better; within the drop, kept
    mixed = truth.copy()
    mixed[:6] = 1 - mixed[:6]
    fp32_mixed = truth.copy()
    fp32_mixed[6:12] = 1 - fp32_mixed[6:12]
    even = accuracy_check(_held(truth), [_probs(fp32_mixed)], [_probs(mixed)], 0.005, "post-training", 300)
    assert even["mcnemar"]["p_value"] == pytest.approx(1.0) and even["drop"] == 0 and even["passed"]


def test_every_output_is_compared_with_keras_the_none_of_these_decision_included():
    truth = np.array([0, 1] * 50)
    probs = _probs(truth)
    scores = np.linspace(0.1, 0.6, 100)
    threshold = float(np.quantile(scores, 0.95))  # the run's, fitted on the same val photos
    same = outputs_check(_held(truth), [probs, scores], [probs + 0.01 * np.array([1, -1]), scores + 0.001],
                         threshold)
    assert same["passed"] and same["top1_agreement"] == 1.0 and same["unknown_agreement"] == 1.0
    assert same["max_abs_diff"] == pytest.approx(0.01)
    assert same["ood_threshold"] == pytest.approx(threshold + 0.001)  # its own: the same share stays known
    # a score shifted as a whole keeps its decisions at its own threshold
    assert outputs_check(_held(truth), [probs, scores], [probs, scores + 0.05], threshold)["passed"]
    # one that ranks the photos otherwise does not: the five furthest swap places with five in the middle
    reordered = scores.copy()
    reordered[[95, 96, 97, 98, 99, 40, 41, 42, 43, 44]] = scores[[40, 41, 42, 43, 44, 95, 96, 97, 98, 99]]
    moved = outputs_check(_held(truth), [probs, scores], [probs, reordered], threshold)
    assert not moved["passed"] and moved["unknown_agreement"] == pytest.approx(0.9)
    assert moved["unknown_p_value"] < 1e-5  # 10 of 100 photos: far more than an export that agrees on 99% gives
    assert len(moved["failed"]) == 1 and moved["failed"][0].startswith("the same 'none of these' decision on 90.0%")
    # two photos either side of the threshold swap places: 2 of 100 can come from an export that agrees on 99%
    near = scores.copy()
    near[[94, 95]] = scores[[95, 94]]  # the last photo kept known and the first called unknown trade places
    swapped = outputs_check(_held(truth), [probs, scores], [probs, near], threshold)
    assert swapped["unknown_agreement"] == pytest.approx(0.98) and swapped["passed"]
    assert swapped["unknown_p_value"] == pytest.approx(1 - 0.99 ** 100 - 100 * 0.01 * 0.99 ** 99)
    # an export that lost the OOD output cannot keep "none of these"
    assert not outputs_check(_held(truth), [probs, scores], [probs], threshold)["passed"]
    # probabilities further than the bound, though every top-1 holds
    far = outputs_check(_held(truth), [probs], [_probs(truth, 0.7)], None)
    assert far["top1_agreement"] == 1.0 and not far["passed"] and far["unknown_agreement"] is None


def test_an_int8_model_that_answers_one_class_for_every_photo_is_a_broken_quantization():
    truth = np.array([0, 1] * 20)
    held = _held(truth)
    assert _collapsed(held, [_probs(truth)], [_probs(np.zeros_like(truth))])
    assert not _collapsed(held, [_probs(truth)], [_probs(truth)])
    assert not _collapsed(held, [_probs(np.zeros_like(truth))], [_probs(np.zeros_like(truth))])  # FP32 does too
