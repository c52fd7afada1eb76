"""The run-folder contract, checked from the outside: what any trainer's run folder, and cv's folder, must hold.

Written independently of inceptune's writer (runs.py), so a writer that
drops or garbles a file fails here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

RUN_FILES = ("model.keras", "labels.json", "config.json", "history.csv", "manifest.csv", "dataset.json",
             "metrics.json")
SETTING_GROUPS = ("data", "recipe", "scratch", "run")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_run_folder(run: Path) -> dict:
    """Assert `run` is a finished run folder that loads, replays and describes itself; returns labels.json."""
    import keras

    from inceptune.settings import resolve

    run = Path(run)
    for name in RUN_FILES:
        assert (run / name).is_file(), f"{run} lacks {name}"
    assert not list(run.glob(".*tmp*")), "temporary files left behind"
    labels = json.loads((run / "labels.json").read_text())
    classes, task = labels["classes"], labels["task"]
    assert task in ("binary", "multiclass", "multilabel") and len(classes) >= 2 and len(set(classes)) == len(classes)
    if "calibration" in labels:  # the temperature already folded into the model's output layer: a record
        assert labels["calibration"]["temperature"] > 0
    if "sets" in labels:  # prediction sets: the held-out scores their thresholds come from, sorted
        sets = labels["sets"]
        assert task != "multilabel" and 0 < sets["coverage"] < 1 and sets["score"] in ("lac", "aps")
        assert len(sets["scores"]) == sets["images"] > 0 and sets["scores"] == sorted(sets["scores"])
    thresholds = labels.get("thresholds", {})
    assert (task == "multilabel" or not thresholds) and set(thresholds) <= set(classes)
    assert all(0 < t < 1 for t in thresholds.values())
    config = json.loads((run / "config.json").read_text())
    assert set(SETTING_GROUPS) <= set(config) and {"resolved", "versions"} <= set(config)
    assert config["resolved"]["image_size"] >= 1 and "keras" in config["versions"]
    resolve("train", {}, str(run / "config.json"))  # the record replays: every setting in it is valid
    history = _rows(run / "history.csv")
    assert history and {"phase", "epoch", "loss", "kept"} <= set(history[0])
    manifest = _rows(run / "manifest.csv")
    assert manifest and set(manifest[0]) == {"path", "label", "split", "sha256", "group"}
    assert {r["split"] for r in manifest} <= {"train", "val", "test"} and any(r["split"] == "train" for r in manifest)
    dataset = json.loads((run / "dataset.json").read_text())
    assert dataset["classes"] == classes and set(dataset["counts"]) == {"train", "val", "test"}
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        held = sum(1 for r in manifest if r["split"] == split)
        if held:
            assert metrics[split]["images"] == held and 0.0 <= metrics[split]["accuracy"] <= 1.0, split
        else:
            assert metrics[split] is None, split
    if "report" in metrics:
        assert (run / "report.html").is_file() and (run / "evaluation.json").is_file()
        assert (run / "predictions.csv").is_file()
    model = keras.saving.load_model(run / "model.keras", compile=False)
    size = config["resolved"]["image_size"]
    answered = model.predict(np.zeros((1, size + 7, size - 3, 3), "float32"), verbose=0)  # any size in
    out, ood = (answered if isinstance(answered, list) else [answered, None])  # [probabilities, OOD score]
    assert np.asarray(out).shape == (1, 1 if task == "binary" else len(classes))
    assert (ood is None) == ("ood" not in labels)  # the score exactly when labels.json has its threshold
    if ood is not None:
        assert np.asarray(ood).shape == (1, 1) and labels["ood"]["threshold"] is not None
    return labels


def check_cv_folder(folder: Path, images: int) -> dict:
    """Assert `folder` holds cv.json, report.html and every image's out-of-fold probabilities; returns cv.json."""
    folder = Path(folder)
    for name in ("cv.json", "predictions.csv", "report.html"):
        assert (folder / name).is_file(), f"{folder} lacks {name}"
    record = json.loads((folder / "cv.json").read_text())
    classes, folds = record["classes"], record["folds"]
    rows = _rows(folder / "predictions.csv")
    assert len(rows) == images == record["images"] and len({r["path"] for r in rows}) == images
    assert list(rows[0])[:4] == ["path", "label", "fold", "predicted"]
    assert [c.removeprefix("p_") for c in list(rows[0])[4:]] == classes
    probs = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert [r["predicted"] for r in rows] == [classes[i] for i in probs.argmax(axis=1)]
    for k, fold in enumerate(record["per_fold"]):  # each fold's metrics are those of its rows
        mine = [r for r in rows if r["fold"] == str(k)]
        assert len(mine) == fold["images"], k
        assert abs(np.mean([r["predicted"] == r["label"] for r in mine]) - fold["accuracy"]) < 1e-12, k
    assert sorted({int(r["fold"]) for r in rows}) == list(range(folds))
    return record
