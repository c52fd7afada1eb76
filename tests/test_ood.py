""""None of these": the OOD branch inside the saved model, its threshold, and the answers that carry it."""

import csv

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import inceptune
from conftest import requires_shared, run_cli, tiny_classifier
from inceptune.deploy.export import serving_model
from inceptune.inference.ranking import answer
from inceptune.models.ood import bank_rows, ood_branch, split_outputs
from inceptune.models.parts import model_parts
from inceptune.runs import load_keras_model


def test_the_score_is_the_cosine_distance_to_the_nearest_training_features():
    rng = np.random.default_rng(0)
    bank = rng.uniform(0, 1, (40, 16))
    branch = ood_branch(bank)
    queries = np.concatenate([bank[:5] * 3.0, rng.uniform(0, 1, (5, 16))])  # scaled copies of bank rows, new rows
    got = branch.predict(queries.astype("float32"), verbose=0).reshape(-1)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    expected = 1 - (unit(queries) @ unit(bank).T).max(axis=1)
    assert np.allclose(got, expected, atol=1e-5) and np.allclose(got[:5], 0, atol=1e-5)


def test_the_bank_keeps_each_class_share_when_capped():
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    rows = bank_rows(labels, limit=100, seed=3)
    assert list(np.bincount(labels[rows])) == [60, 30, 10] and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, bank_rows(labels, limit=100, seed=3))
    assert np.array_equal(bank_rows(labels[:50], limit=100), np.arange(50))


def test_a_model_with_the_branch_saves_loads_and_exports_with_both_answers(tmp_path):
    keras.utils.set_random_seed(0)
    classifier = tiny_classifier(3)
    images = np.random.default_rng(1).uniform(0, 255, (4, 40, 40, 3)).astype("float32")
    features = keras.Model(classifier.model.inputs, classifier.features).predict(images, verbose=0)
    model = classifier.with_ood(ood_branch(features[:2]))  # the first two images are "training" images
    model.save(tmp_path / "model.keras")
    loaded = load_keras_model(tmp_path / "model.keras")  # safe mode: built-in layers only
    probs, scores = split_outputs(loaded.predict(images, verbose=0))
    assert probs.shape == (4, 3) and np.allclose(scores[:2], 0, atol=1e-5) and np.all(scores[2:] > 1e-4)
    parts = model_parts(loaded)
    assert parts.ood is not None and parts.output.name == "predictions"  # the head is the head, the branch apart
    serving = serving_model(loaded, 32)
    served = split_outputs(serving.predict(keras.ops.image.resize(images, (32, 32)).numpy(), verbose=0))
    assert served[1] is not None and served[1].shape == (4,)


def test_outputs_with_and_without_a_score():
    p = np.ones((2, 3)) / 3
    assert split_outputs(p)[1] is None
    assert split_outputs([p, np.array([[0.1], [0.7]])])[1].tolist() == [0.1, 0.7]


def test_the_answer_says_unknown_above_the_threshold():
    probs = np.array([0.7, 0.3])
    assert answer(["a", "b"], probs, 1, None, (0.4, 0.25)) | {} == {
        **answer(["a", "b"], probs, 1, None), "unknown": True, "ood_score": pytest.approx(0.4)}
    assert answer(["a", "b"], probs, 1, None, (0.1, 0.25))["unknown"] is False
    assert "unknown" not in answer(["a", "b"], probs, 1, None, (float("nan"), None))  # a run without a score


@requires_shared
def test_a_flowers_run_scores_ants_and_bees_as_further_from_its_training_photos(own_pretrained_flowers_run,
                                                                              small_hymenoptera):
    """On the real network: how far a photo is from the training photos' pretrained features."""
    model = inceptune.load(str(own_pretrained_flowers_run.run))
    own = model.evaluate()  # its own test split: labelled flowers the model has never seen
    with open(own_pretrained_flowers_run.run / "manifest.csv") as f:
        tested = [r["path"] for r in csv.DictReader(f) if r["split"] == "test"]
    flowers = np.array([r["ood_score"] for r in model.predict(tested)])
    insects = np.array([r["ood_score"] for r in model.predict(str(small_hymenoptera / "val"))])
    threshold = model.ood_threshold
    auroc = roc_auc_score(np.r_[np.zeros(len(flowers)), np.ones(len(insects))], np.r_[flowers, insects])
    assert own["ood"]["unknown"] == int((flowers > threshold).sum())
    assert auroc > 0.75, auroc
    assert (insects > threshold).mean() > (flowers > threshold).mean()
    # the command's plain text and CSV say "none of these" for exactly the photos the API calls unknown
    photos = sorted(str(p) for p in (small_hymenoptera / "val").rglob("*.jpg"))[:8] + tested[:4]
    said = {r["path"]: r["unknown"] for r in model.predict(photos)}
    assert any(said.values())
    text = run_cli("predict", str(own_pretrained_flowers_run.run), *photos, "--runtime", "keras")
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(": ", 1) for line in text.stdout.splitlines())
    assert {path: line.startswith("none of these") for path, line in lines.items()} == said
    table = run_cli("predict", str(own_pretrained_flowers_run.run), *photos, "--runtime", "keras", "--csv", "--top", "1")
    rows = list(csv.DictReader(table.stdout.splitlines()))
    assert {r["path"]: r["unknown"] == "true" for r in rows} == said
