"""The core workflow end to end on small inputs: train, the run folder, the cache, predict."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import inceptune
from conftest import SHARED_WEIGHTS, SMALL_SIZE, make_color_dataset, requires_shared, run_cli
from contract import check_run_folder

pytestmark = requires_shared


def test_run_folder_holds_every_artefact(trained_run):
    run = trained_run.run
    labels = check_run_folder(run)
    assert (labels["classes"], labels["task"]) == (["ants", "bees"], "binary") and "ood" in labels
    config = json.loads((run / "config.json").read_text())
    assert config["resolved"]["image_size"] == SMALL_SIZE and config["recipe"]["unfreeze_from"] == "mixed9"
    assert "keras" in config["versions"]
    with open(run / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120 and {r["split"] for r in rows} == {"train", "val", "test"}
    with open(run / "history.csv") as f:
        phases = [r["phase"] for r in csv.DictReader(f)]
    assert phases.count("head") == 15 and 1 <= phases.count("fine-tune") <= 2
    assert not list(run.glob(".*tmp*"))


def test_metrics_are_recorded_and_better_than_chance(trained_run):
    metrics = json.loads((trained_run.run / "metrics.json").read_text())
    assert metrics["val"]["images"] == 60 and metrics["val"]["accuracy"] >= 0.8
    assert metrics["phase1"]["features"]["computed"] + metrics["phase1"]["features"]["from_cache"] == 120


def test_a_run_replayed_from_its_config_json_takes_every_feature_from_the_cache_and_scores_the_same(
        trained_run, tmp_path):
    proc = run_cli("train", "--config", str(trained_run.run / "config.json"), "--out", str(tmp_path / "again"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    features = metrics["phase1"]["features"]
    assert features["from_cache"] == 120 and features["computed"] == 0
    # Same settings, same cached features: the same model, to the last digit on this CPU.
    for split in ("val", "test"):
        for name in ("accuracy", "loss"):
            assert metrics[split][name] == pytest.approx(trained_run.metrics[split][name], abs=1e-6), (split, name)
    replayed = json.loads((tmp_path / "again" / "config.json").read_text())
    original = json.loads((trained_run.run / "config.json").read_text())
    assert {g: v for g, v in replayed.items() if g != "run"} == {g: v for g, v in original.items() if g != "run"}


def test_evaluating_the_saved_model_on_images_matches_the_training_metrics(own_trained_run):
    # train() scores the test split from cached activations; evaluate() runs model.keras on the
    # image files. Equal numbers show the cached fine-tuning path is the saved model.
    metrics = inceptune.evaluate(str(own_trained_run.run))
    assert metrics["images"] == own_trained_run.metrics["test"]["images"]
    assert metrics["accuracy"] == pytest.approx(own_trained_run.metrics["test"]["accuracy"])
    assert metrics["log_loss"] == pytest.approx(own_trained_run.metrics["test"]["loss"], abs=1e-4)


PLAIN_KERAS = """
import json, sys, numpy as np, keras
from PIL import Image
model = keras.saving.load_model(sys.argv[1] + "/model.keras")
classes = json.load(open(sys.argv[1] + "/labels.json"))["classes"]
out = {}
for path in sys.argv[2:]:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype="float32")[None]
    answered = model.predict(pixels, verbose=0)  # [probabilities, OOD score] since 0.5
    p = float((answered[0] if isinstance(answered, list) else answered)[0, 0])
    out[path] = {classes[0]: 1 - p, classes[1]: p}
print(json.dumps(out))
"""


def test_plain_keras_in_a_fresh_process_gives_the_same_probabilities_as_predict(trained_run, small_hymenoptera):
    images = sorted(str(p) for p in (small_hymenoptera / "val").rglob("*.jpg"))[:3]
    cli = run_cli("predict", str(trained_run.run), *images, "--json")
    assert cli.returncode == 0, cli.stderr
    ours = {r["path"]: r["probabilities"] for r in json.loads(cli.stdout)}
    plain = subprocess.run([sys.executable, "-c", PLAIN_KERAS, str(trained_run.run), *images],
                           capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin"})
    assert plain.returncode == 0, plain.stderr
    theirs = json.loads(plain.stdout.strip().splitlines()[-1])
    for path in images:
        for label in ("ants", "bees"):
            assert ours[path][label] == pytest.approx(theirs[path][label], abs=1e-4)


def test_predict_ranks_classes_and_reports_unreadable_files(trained_run, small_hymenoptera, tmp_path):
    (tmp_path / "broken.jpg").write_text("no")
    image = sorted((small_hymenoptera / "val" / "bees").glob("*.jpg"))[0]
    results = inceptune.predict(str(trained_run.run), [str(image), str(tmp_path / "broken.jpg")], top=2)
    assert [t["label"] for t in results[0]["top"]] == sorted(results[0]["probabilities"],
                                                             key=results[0]["probabilities"].get, reverse=True)
    assert sum(results[0]["probabilities"].values()) == pytest.approx(1.0)
    assert results[1]["error"].startswith("not an image")


def test_multiclass_softmax_head_without_fine_tuning(tmp_path):
    data = make_color_dataset(tmp_path / "data", per_class=8, classes=("red", "green", "blue"))
    result = inceptune.train(str(data), out=str(tmp_path / "run"), weights=str(SHARED_WEIGHTS), image_size=75,
                             epochs=20, fine_tune_epochs=0, val_split=0.25, test_split=0.0)
    assert result.metrics["val"]["accuracy"] == 1.0 and result.metrics["test"] is None
    assert json.loads((result.run / "labels.json").read_text())["task"] == "multiclass"
    probs = inceptune.predict(str(result.run), str(data / "green"), top=3)[0]["probabilities"]
    assert max(probs, key=probs.get) == "green" and len(probs) == 3


def test_evaluate_command_on_the_test_split_and_on_other_folders(own_trained_run, small_hymenoptera, tmp_path):
    proc = run_cli("evaluate", str(own_trained_run.run), "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["accuracy"] == pytest.approx(own_trained_run.metrics["test"]["accuracy"])
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["images"]
    other = make_color_dataset(tmp_path / "other", per_class=2, classes=("red",))
    (other / "ants").mkdir()
    first_ant = sorted((small_hymenoptera / "val" / "ants").glob("*.jpg"))[0]
    (other / "ants" / "a.jpg").write_bytes(first_ant.read_bytes())
    proc = run_cli("evaluate", str(own_trained_run.run), str(other))
    assert proc.returncode == 2 and "class 'red', which the model does not know" in " ".join(proc.stderr.split())


def test_a_run_whose_model_carries_code_is_refused(trained_run, tmp_path):
    import shutil

    import keras

    run = tmp_path / "suspicious"
    shutil.copytree(trained_run.run, run)
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(1, 2))[:, :1] * 0 + 0.5)(inputs)
    keras.Model(inputs, outputs).save(run / "model.keras")
    proc = run_cli("predict", str(run), str(run / "labels.json"))
    assert proc.returncode == 2 and "refuses to load it" in proc.stderr and "Traceback" not in proc.stderr
