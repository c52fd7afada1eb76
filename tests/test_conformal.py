"""Prediction sets (evaluation/conformal.py): the same sets as crepes' conformal classifier on the same scores,
the coverage they promise on exchangeable data, per class when asked, and never empty."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import one_sentence_error, private_copy, requires_shared, run_cli
from inceptune.errors import UserError
from inceptune.evaluation.conformal import (check_coverage, class_scores, fit_sets, prediction_sets, raw_sets,
                                             set_summary, thresholds)


def _answers(n: int, k: int = 4, seed: int = 0, imbalance: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a noisy classifier and true classes drawn from them: exchangeable, calibrated answers."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, k))
    if imbalance:
        logits[:, 0] += 1.5  # class 0 is common and easy
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=p) for p in probs])
    return probs, y


@pytest.mark.parametrize("score", ["lac", "aps"])
@pytest.mark.parametrize("by_class", [False, True])
def test_the_sets_are_crepes_sets_on_the_same_scores(score, by_class):
    from crepes import ConformalClassifier

    probs, y = _answers(200 + 400)
    calibration, test = slice(0, 200), slice(200, None)
    # (n + 1)(1 - coverage) is never a whole number here, for all 200 images or a class's: crepes includes a class
    # at p >= 1 - coverage, the ceil((n + 1) c)-th score at p > 1 - coverage, which differ only on that tie
    coverage = 0.9013
    record = fit_sets(probs[calibration], y[calibration], coverage, score, by_class)
    alphas = class_scores(probs, score)
    reference = ConformalClassifier()
    truth = alphas[calibration][np.arange(200), y[calibration]]
    reference.fit(truth, bins=y[calibration] if by_class else None)
    if by_class:  # each class's column against that class's calibration scores
        expected = np.column_stack([reference.predict_set(alphas[test], bins=np.full(400, c), confidence=coverage,
                                                          smoothing=False)[:, c] for c in range(4)])
    else:
        expected = reference.predict_set(alphas[test], confidence=coverage, smoothing=False)
    ours = raw_sets(alphas[test], thresholds(record, 4))
    np.testing.assert_array_equal(ours, expected.astype(bool))
    assert record["score"] == score and record["images"] == 200 and len(record["scores"]) == 200


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_sets_cover_the_true_class_as_often_as_promised(score):
    probs, y = _answers(500 + 20000, seed=1)
    record = fit_sets(probs[:500], y[:500], 0.9, score)
    for coverage in (0.8, 0.9, 0.95):
        sets = prediction_sets(probs[500:], record, coverage)
        covered = sets[np.arange(len(sets)), y[500:]].mean()
        # the guarantee: at least the coverage (less sampling noise); the plain score's continuous scores also
        # keep it below coverage + 1 / (n + 1); APS without randomisation adds a whole class at a time, so more
        assert coverage - 0.01 <= covered, (coverage, covered)
        if score == "lac":
            assert covered <= coverage + 1 / 501 + 0.03, (coverage, covered)
    sizes = [prediction_sets(probs[500:], record, c).sum(axis=1).mean() for c in (0.8, 0.9, 0.95)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # more coverage, larger sets


def test_by_class_sets_cover_every_class_and_the_plain_ones_do_not():
    probs, y = _answers(1500 + 20000, k=3, seed=2, imbalance=True)
    plain = fit_sets(probs[:1500], y[:1500], 0.9, "lac")
    mondrian = fit_sets(probs[:1500], y[:1500], 0.9, "lac", by_class=True)
    rare_coverage = {}
    for name, record in (("plain", plain), ("by class", mondrian)):
        sets = prediction_sets(probs[1500:], record)
        per_class = [sets[np.flatnonzero(y[1500:] == c), c].mean() for c in range(3)]
        rare_coverage[name] = min(per_class)
        if name == "by class":
            assert all(c >= 0.88 for c in per_class), per_class
    assert rare_coverage["plain"] < 0.88 <= rare_coverage["by class"]  # the plain sets under-cover a rare class


def test_auto_keeps_the_score_with_smaller_sets_and_says_why():
    probs, y = _answers(400, seed=3)
    record = fit_sets(probs, y, 0.9, "auto", seed=5)
    sizes = record["chosen_by"]["mean_set_size_on_halves"]
    assert record["score"] == min(sizes, key=sizes.get)
    assert fit_sets(probs, y, 0.9, "auto", seed=5) == record  # seeded halves: the same choice every time


def test_a_set_is_never_empty_and_holds_the_top_class_when_nothing_passes():
    probs = np.array([[0.4, 0.35, 0.25], [0.98, 0.01, 0.01]])
    record = {"score": "lac", "coverage": 0.5, "by_class": False, "scores": [0.01, 0.02, 0.03]}  # threshold 0.02
    sets = prediction_sets(probs, record)
    assert sets.tolist() == [[True, False, False], [True, False, False]]
    assert not raw_sets(class_scores(probs, "lac"), thresholds(record, 3))[0].any()  # empty before the rule


def test_a_coverage_past_what_the_held_out_images_support_gives_every_class():
    probs, y = _answers(20)
    record = fit_sets(probs, y, 0.9, "lac")
    assert prediction_sets(probs, record, 0.99).all()  # ceil(21 x 0.99) = 21 > 20 scores: no finite threshold


def test_the_summary_has_intervals_and_sizes():
    y = np.array([0, 1, 2, 0])
    sets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]], dtype=bool)
    summary = set_summary(sets, y, 0.9, "aps")
    assert summary["coverage"] == 0.75 and summary["mean_size"] == 1.5 and summary["sizes"] == {"1": 2, "2": 2}
    low, high = summary["coverage_ci95"]
    assert low < 0.75 < high and summary["mean_size_ci95"][0] < 1.5 < summary["mean_size_ci95"][1]


def test_a_coverage_outside_zero_to_one_is_one_sentence():
    check_coverage(None)
    check_coverage(0.95)
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(UserError, match="--coverage must be between 0 and 1"):
            check_coverage(bad)


@requires_shared
def test_a_run_answers_prediction_sets_everywhere_and_evaluate_measures_their_coverage(trained_run, tmp_path):
    """ants vs bees at 150 on the real network (60 val images fit the sets): predict, the CLI's text and CSV,
    `--coverage`, and `evaluate` all answer from labels.json's record, as evaluation/conformal.py computes."""
    import csv
    import io

    import inceptune

    run = private_copy(trained_run, tmp_path).run  # evaluate writes its report into the run
    labels = json.loads((run / "labels.json").read_text())
    record, classes = labels["sets"], labels["classes"]
    assert record["coverage"] == 0.9 and record["images"] == 60 and record["fitted_on"].startswith("the val split")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "scores" not in metrics["sets"] and metrics["sets"]["score"] == record["score"]
    with open(run / "manifest.csv", newline="") as f:
        images = [r["path"] for r in csv.DictReader(f) if r["split"] == "test"]
    answers = inceptune.predict(str(run), images)
    probs = np.array([[a["probabilities"][c] for c in classes] for a in answers])
    for answer, in_set, p in zip(answers, prediction_sets(probs, record), probs):
        assert answer["set"] == [classes[i] for i in np.argsort(-p, kind="stable") if in_set[i]]
        assert answer["set"][0] == answer["top"][0]["label"]  # never empty: the top class at least
    wide = inceptune.predict(str(run), images, coverage=0.99)
    narrow = inceptune.predict(str(run), images, coverage=0.5)
    for a, w, n in zip(answers, wide, narrow):
        assert set(n["set"]) <= set(a["set"]) <= set(w["set"])
    assert sum(len(w["set"]) for w in wide) > sum(len(n["set"]) for n in narrow)

    proc = run_cli("predict", str(run), *images, "--csv", "--top", "1", "--coverage", "0.99")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["set"].split(";") for r in rows] == [w["set"] for w in wide]
    proc = run_cli("predict", str(run), *images, "--coverage", "0.99")
    both = [line for line in proc.stdout.splitlines() if " or " in line]
    # "bees or ants; bees 0.994, ants 0.006" (a photo answered "none of these" says that first instead)
    assert len(both) == sum(len(w["set"]) == 2 and not w.get("unknown") for w in wide) > 0
    assert "--coverage must be between 0 and 1" in one_sentence_error(run_cli("predict", str(run), images[0],
                                                                              "--coverage", "1.5"))

    measured = inceptune.evaluate(str(run))["sets"]
    sets = prediction_sets(probs, record)
    truth = np.array([classes.index(Path(p).parent.name) for p in images])
    assert measured["coverage"] == pytest.approx(sets[np.arange(len(truth)), truth].mean())
    assert measured["mean_size"] == pytest.approx(sets.sum(axis=1).mean())
    low, high = measured["coverage_ci95"]
    assert low <= measured["coverage"] <= high and measured["coverage_target"] == 0.9
    assert inceptune.evaluate(str(run), coverage=0.99)["sets"]["mean_size"] >= measured["mean_size"]
