"""Evaluation: metrics against scikit-learn, plots, report.html in a real browser, TTA, tracking."""

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)

import inceptune
from conftest import headless_chromium, png_size, requires_shared, run_cli
from inceptune.evaluation.predictions import read_predictions
from inceptune.evaluation.calibration import at_temperature
from inceptune.evaluation.metrics import SCALARS, calibration, classification_metrics, summarize_folds
from inceptune.inference.tta import VIEWS, view, with_tta

PNGS = ("training_curves.png", "confusion_matrix.png", "roc_curve.png", "precision_recall_curve.png",
        "reliability_diagram.png", "errors.png")


# --- metrics, without a model


def test_expected_calibration_error_of_a_known_case():
    # 10 images, all predicted at 0.9 confidence, 6 right: ECE = |0.6 - 0.9| = 0.3, one bin.
    probs = np.tile([0.9, 0.1], (10, 1))
    y = np.array([0] * 6 + [1] * 4)
    ece, bins = calibration(y, probs)
    assert ece == pytest.approx(0.3) and len(bins) == 1 and bins[0]["count"] == 10
    assert bins[0]["accuracy"] == pytest.approx(0.6) and bins[0]["confidence"] == pytest.approx(0.9)
    # Perfectly confident and right: zero.
    assert calibration(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]))[0] == 0.0


def test_metrics_of_a_class_absent_from_the_labels_are_undefined_not_a_crash():
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    m = classification_metrics(np.array([0, 0, 1]), probs, ["a", "b", "c"])
    assert m["per_class"]["c"]["roc_auc"] is None and m["per_class"]["a"]["roc_auc"] == 1.0
    assert m["accuracy"] == 1.0 and m["confusion_matrix"][2] == [0, 0, 0]


def test_fold_summary_is_mean_and_sample_std():
    s = summarize_folds([{"accuracy": 0.8, "roc_auc": None}, {"accuracy": 0.9, "roc_auc": 0.5}])
    assert s["accuracy"]["mean"] == pytest.approx(0.85) and s["accuracy"]["std"] == pytest.approx(np.std([.8, .9],
                                                                                                         ddof=1))
    assert s["roc_auc"] == {"mean": 0.5, "std": 0.0, "folds": 1, "ci95": None}


# --- test-time augmentation


def test_tta_views_are_fixed_flips_and_crops():
    images = np.arange(2 * 8 * 8 * 3, dtype="float32").reshape(2, 8, 8, 3)
    assert np.array_equal(view(images, "full"), images)
    assert np.array_equal(view(images, "full+flip"), images[:, :, ::-1])
    assert np.array_equal(view(images, "top-left"), images[:, :7, :7])
    assert np.array_equal(view(images, "bottom-right+flip"), images[:, 1:, 1:][:, :, ::-1])
    assert len(set(VIEWS)) == len(VIEWS) == 12
    calls = []
    averaged = with_tta(lambda x: (calls.append(x.shape), np.full((len(x), 2), x.mean()))[1], 3)(images)
    assert calls == [(2, 8, 8, 3), (2, 8, 8, 3), (2, 7, 7, 3)] and averaged.shape == (2, 2)


# --- on trained runs



@requires_shared
def test_tta_changes_predictions_deterministically(trained_run, small_hymenoptera):
    images = [str(p) for p in sorted((small_hymenoptera / "val").rglob("*.jpg"))[:4]]

    def probs(tta):
        return np.array([r["probabilities"]["bees"] for r in inceptune.predict(str(trained_run.run), images, tta=tta)])

    plain, first, second = probs(1), probs(6), probs(6)
    assert np.array_equal(first, second)  # same input, same output
    assert not np.allclose(first, plain, atol=1e-6)  # the views do change the answer
    proc = run_cli("predict", str(trained_run.run), images[0], "--tta", "13")
    assert proc.returncode == 2 and "--tta must be between 1" in proc.stderr


@requires_shared
def test_evaluate_json_agrees_with_scikit_learn_on_the_saved_predictions(own_flowers_run):
    proc = run_cli("evaluate", str(own_flowers_run.run), "--json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    for key in ("accuracy", "balanced_accuracy", "per_class", "macro_avg", "weighted_avg", "roc_auc",
                "average_precision", "top_k_accuracy", "log_loss", "ece", "confusion_matrix"):
        assert m[key] is not None, key
    paths, labels, probs = read_predictions(own_flowers_run.run / "predictions.csv")
    classes = json.loads((own_flowers_run.run / "labels.json").read_text())["classes"]
    y = np.array([classes.index(label) for label in labels])
    pred = probs.argmax(axis=1)
    assert len(paths) == m["images"] == 20 and probs.shape == (20, 5)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_avg"]["f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["weighted_avg"]["precision"] == pytest.approx(precision_score(y, pred, average="weighted",
                                                                            zero_division=0))
    for i, c in enumerate(classes):
        assert m["per_class"][c]["recall"] == pytest.approx(recall_score(y == i, pred == i, zero_division=0))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    onehot = np.eye(5)[y]
    assert m["average_precision"] == pytest.approx(average_precision_score(onehot, probs, average="macro"))
    assert m["top_k_accuracy"]["3"] == pytest.approx(top_k_accuracy_score(y, probs, k=3, labels=range(5)))
    assert m["log_loss"] == pytest.approx(log_loss(y, probs, labels=range(5)))
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=range(5)).tolist()
    # Every scalar has its 95% interval, which contains it; 20 images leave accuracy wide open.
    for name in SCALARS:
        if m[name] is not None:
            low, high = m["ci95"][name]
            assert low <= m[name] <= high, name
    assert m["ci95"]["accuracy"][1] - m["ci95"]["accuracy"][0] > 0.2
    # Calibrated: the temperature is in the model; before it, the same argmax on every image.
    temperature = json.loads((own_flowers_run.run / "labels.json").read_text())["calibration"]["temperature"]
    assert m["calibration"]["temperature"] == temperature and temperature != 1.0
    before = at_temperature(probs, 1 / temperature)
    assert np.array_equal(before.argmax(axis=1), pred) and not np.allclose(before, probs, atol=1e-4)
    assert m["calibration"]["ece_before"] == pytest.approx(calibration(y, before)[0], abs=1e-6)
    # The labelled test photos the OOD score would have rejected, counted.
    assert m["ood"]["threshold"] > 0 and 0 <= m["ood"]["unknown"] <= m["images"]
    # The readable form: a table and the scalar metrics with their intervals.
    table = run_cli("evaluate", str(own_flowers_run.run))
    assert table.returncode == 0 and "roses" in table.stdout + table.stderr and "roc_auc" in table.stdout
    assert f"[{m['ci95']['accuracy'][0]:.4f}, {m['ci95']['accuracy'][1]:.4f}]" in table.stdout


@requires_shared
def test_binary_metrics_use_the_positive_class(own_trained_run):
    m = inceptune.evaluate(str(own_trained_run.run))
    _, labels, probs = read_predictions(own_trained_run.run / "predictions.csv")
    y = np.array([label == "bees" for label in labels])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, probs[:, 1]))


@requires_shared
def test_train_writes_the_report_and_every_plot(flowers_run):
    run = flowers_run.run
    for name in PNGS:
        width, height = png_size(run / name)
        assert width > 200 and height > 200, name
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(PNGS) and "src=\"http" not in html
    for text in ("daisy", "roc_auc", "Dataset", "Settings", "No leakage"):
        assert text in html
    assert list((run / "tensorboard" / "head").rglob("events.out.tfevents.*"))
    assert list((run / "tensorboard" / "fine-tune").rglob("events.out.tfevents.*"))


@requires_shared
def test_report_renders_with_its_images_in_headless_chromium(flowers_run, tmp_path):
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((flowers_run.run / "report.html").as_uri())
        widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        rows = page.locator("#per-class tr").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert len(widths) == len(PNGS) and min(widths) > 200  # every picture decoded by the browser
    assert rows == 1 + 5
    width, height = png_size(tmp_path / "report.png")
    assert width == 1200 and height > 3000  # the full page, pictures included


@requires_shared
def test_evaluate_on_another_folder_writes_its_own_report(trained_run, small_hymenoptera, tmp_path):
    other = tmp_path / "only-bees"
    shutil.copytree(small_hymenoptera / "val" / "bees", other / "bees")
    proc = run_cli("evaluate", str(trained_run.run), str(other), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "has no images of class ants" in " ".join(proc.stderr.split())
    m = json.loads(proc.stdout)
    target = trained_run.run / "evaluations" / "only-bees"
    assert m["images"] == 30 and m["roc_auc"] is None  # one class present: AUC is undefined, said as null
    assert (target / "report.html").is_file() and (target / "confusion_matrix.png").is_file()


@requires_shared
def test_mlflow_receives_settings_metrics_plots_and_the_model(flowers_run, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts in ./mlruns beside a sqlite store
    from inceptune.runs import RunFolder
    from inceptune.tracking import log_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_run(RunFolder.open(flowers_run.run), "mlflow", uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = client.get_run(run_id)
    assert logged.data.params["image_size"] == "150" and logged.data.params["unfreeze_from"] == "mixed9"
    assert logged.data.metrics["test.accuracy"] == pytest.approx(flowers_run.metrics["test"]["accuracy"])
    assert len(client.get_metric_history(run_id, "head.loss")) == 15
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id,
                                                                                                         "plots")}
    assert {"report.html", "plots/roc_curve.png", "model"} <= artifacts


@pytest.mark.parametrize("arch", [None, "mini-inception"])
def test_track_mlflow_without_mlflow_fails_before_any_image_is_read(tmp_path, monkeypatch, arch):
    """An MLflow that is not installed is found before the work starts, not after training and exporting."""
    import sys

    from conftest import make_color_dataset
    from inceptune import hooks

    data = make_color_dataset(tmp_path / "colors", per_class=4)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # how Python itself marks a package as absent: import fails
    read = []
    extra = ["--arch", arch, "--weights", "none"] if arch else []
    with hooks.listen("feature_cached", read.append), hooks.listen("epoch_end", read.append):
        proc = run_cli("train", str(data), "--out", str(tmp_path / "run"), "--track", "mlflow", *extra)
    assert proc.returncode == 2 and "needs MLflow: pip install 'inceptune[mlflow]'" in proc.stderr
    assert "Traceback" not in proc.stderr and not read and not (tmp_path / "run").exists()
