"""The recipe search: the linear head, the quick search's order (never the clock's), the Optuna study (seeded,
resumable), and `train` choosing, refitting and replaying on real cached features."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import NARROW_WEIGHTS, copy_subset, FLOWERS, requires_shared, run_cli
from inceptune.data.scan import ImageRecord
from inceptune.features.cache import FeatureCache
from inceptune.vocabulary.sources import SEARCH_KINDS
from inceptune.hooks import SIGNAL_ENV
from inceptune.search.choose import choose
from inceptune.search.heads import fit_linear
from inceptune.search.scoring import SearchData, score
from inceptune.search.space import baseline_candidate, quick_sources
from inceptune.search.study import finished, run_study
from inceptune.settings import SettingError, resolve

SIZE = 75


def _synthetic(tmp_path, informative: str = "avg-pool-mixed8", n_per_class: int = 12, classes: int = 3):
    """Cached features for fake records: `informative` separates the classes, every other kind is noise."""
    rng = np.random.default_rng(0)
    cache = FeatureCache(tmp_path / "cache", {"test": "synthetic"})
    records, labels = [], []
    for c in range(classes):
        for i in range(n_per_class):
            sha = f"{c:02d}{i:062d}"
            records.append(ImageRecord(path=f"/x/{c}/{i}.jpg", label=f"c{c}", sha256=sha, split="train"))
            labels.append(c)
            for kind in SEARCH_KINDS:
                v = rng.normal(size=16).astype("float32")
                if kind == informative:
                    v[c] += 4.0
                cache.put(kind, sha, v)
    data = SearchData.of(records, lambda r: int(r.label[1:]), [f"c{c}" for c in range(classes)], cache, 3, 7)
    return data


def _settings(tmp_path, **given):
    (tmp_path / "data").mkdir(exist_ok=True)
    return resolve("train", {"data": str(tmp_path / "data"), **given})


def test_the_linear_head_gives_scikit_learns_probabilities_through_the_keras_layers():
    import keras
    from sklearn.linear_model import LogisticRegression

    from inceptune.models.classifier import head_layers, set_standardization

    rng = np.random.default_rng(1)
    for classes in (2, 4):
        x = rng.normal(size=(60, 10)) + np.repeat(np.eye(classes, 10) * 3, 60 // classes, axis=0)
        y = np.repeat(np.arange(classes), 60 // classes)
        head = fit_linear(x, y, classes, l2=0.5)
        mean, scale = x.mean(0), np.sqrt(x.var(0).mean())
        reference = LogisticRegression(C=2.0, max_iter=300).fit((x - mean) / scale, y).predict_proba((x - mean) / scale)
        np.testing.assert_allclose(head.predict_proba(x), reference, atol=1e-6)
        layers = head_layers(classes, dropout=0.3)
        model = keras.Sequential([keras.Input((10,)), *layers])
        set_standardization(layers[0], head.mean, head.variance)
        layers[-1].set_weights([head.kernel.astype("float32"), head.bias.astype("float32")])
        out = model.predict(x.astype("float32"), verbose=0)
        keras_p = np.concatenate([1 - out, out], axis=1) if classes == 2 else out
        np.testing.assert_allclose(keras_p, reference, atol=1e-4)


def test_the_quick_search_starts_from_the_baseline_and_finds_the_informative_source(tmp_path):
    data = _synthetic(tmp_path)
    choice = choose(_settings(tmp_path), data, "quick")
    first = choice.tried[0].candidate
    assert {k: first[k] for k in baseline_candidate()} == baseline_candidate()
    assert (choice.candidate["feature_block"], choice.candidate["pooling"]) == ("mixed8", "avg")
    assert choice.score.accuracy > 0.9 > choice.baseline.accuracy
    assert choice.candidate["head"] == "linear"
    # every single-block source was tried, in the documented order, then the best two and three blocks side
    # by side, then the L2 refinements
    sources = [(t.candidate["feature_block"], t.candidate["pooling"]) for t in choice.tried[:18]]
    assert sources == [(c["feature_block"], c["pooling"]) for c in quick_sources({})]
    pair, triple = (t.candidate["feature_block"] for t in choice.tried[18:20])
    assert pair.count("+") == 1 and triple.count("+") == 2 and "mixed8" in pair.split("+")
    assert {t.candidate["l2"] for t in choice.tried[20:]} == {0.1, 10.0, 0.01, 100.0}


def test_the_quick_search_chooses_the_same_on_an_idle_and_a_busy_machine(tmp_path):
    """What the quick search tries follows from the data, not from the seconds left: with every core busy in
    other processes it tries the same candidates in the same order and chooses the same recipe."""
    data = _synthetic(tmp_path)
    idle = choose(_settings(tmp_path), data, "quick")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        busy = choose(_settings(tmp_path), data, "quick")
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert len(idle.tried) == 18 + 2 + 4  # every source, the best two and three side by side, the L2 values
    assert [t.candidate for t in busy.tried] == [t.candidate for t in idle.tried]
    assert [t.score.per_fold for t in busy.tried] == [t.score.per_fold for t in idle.tried]
    assert busy.candidate == idle.candidate and busy.stopped is idle.stopped is None
    assert "stopped" in idle.record(len(data.records)) and "budget_seconds" not in idle.record(len(data.records))


def test_a_timeout_stops_the_quick_search_and_says_so_and_explicit_settings_stay(tmp_path, capsys):
    data = _synthetic(tmp_path)
    choice = choose(_settings(tmp_path, timeout="0.001"), data, "quick")
    assert len(choice.tried) == 1  # the baseline, which is also the start: the deadline passed while scoring it
    assert choice.stopped == "--timeout 0.001 reached with 18 of the quick search's candidates not tried"
    assert choice.record(len(data.records))["stopped"] == choice.stopped
    assert choice.stopped in " ".join(capsys.readouterr().err.split())
    fixed = choose(_settings(tmp_path, feature_block="mixed6", l2=3.0), data, "quick")
    assert {t.candidate["feature_block"] for t in fixed.tried[1:]} == {"mixed6"}
    assert fixed.candidate["l2"] == 3.0 and fixed.candidate["feature_block"] == "mixed6"


def test_a_better_score_replaces_the_start_only_beyond_fold_to_fold_noise():
    from inceptune.search.choose import Tried, _departure
    from inceptune.search.heads import Score

    start_folds = [0.94, 0.96, 0.92, 0.98, 0.96]
    start = Tried({"feature_block": "mixed10"}, Score(float(np.mean(start_folds)), 0.2, start_folds), 0.0)

    def candidate(gains):
        folds = [a + g for a, g in zip(start_folds, gains)]
        return Tried({"feature_block": "mixed8"}, Score(float(np.mean(folds)), 0.2, folds), 0.0)

    noisy = candidate([0.04, -0.02, 0.04, 0.0, 0.02])  # +0.016 on average, but not fold after fold
    kept, why = _departure(start, noisy, 5)
    assert kept is start and not why["adopted"] and why["t"] < why["critical"]
    steady = candidate([0.06, 0.05, 0.07, 0.06, 0.05])
    taken, why = _departure(start, steady, 5)
    assert taken is steady and why["adopted"]
    assert _departure(start, start, 5) == (start, None)


def test_search_none_scores_the_recipe_as_given_and_applying_a_choice_turns_the_search_off(tmp_path):
    data = _synthetic(tmp_path)
    s = _settings(tmp_path, head="linear", feature_block="mixed8", search="none")
    choice = choose(s, data, "none")
    assert choice.candidate["feature_block"] == "mixed8"
    assert choice.score.accuracy == score({**choice.candidate}, data).accuracy
    applied = choice.apply(s)
    assert applied.recipe.search == "none" and applied.recipe.feature_block == "mixed8"


def test_folds_are_stratified_and_keep_identical_files_together():
    from inceptune.data.split import assign_folds

    labels = ["a"] * 10 + ["b"] * 10
    groups = [f"h{i // 2}" for i in range(20)]  # pairs of identical files
    folds = assign_folds(labels, groups, 5, seed=3)
    for g in set(groups):
        assert len({folds[i] for i in range(20) if groups[i] == g}) == 1
    assert all(sum(1 for i in range(20) if folds[i] == k and labels[i] == "a") >= 1 for k in range(5))


def test_the_study_is_reproducible_and_a_restarted_study_keeps_its_finished_trials(tmp_path):
    data = _synthetic(tmp_path)
    base = {**baseline_candidate(), "batch_size": 32}
    fixed = {"head": "linear"}
    one = run_study(data, base, fixed, trials=10, timeout=None, seed=5, start_from=baseline_candidate())
    two = run_study(data, base, fixed, trials=10, timeout=None, seed=5, start_from=baseline_candidate())
    assert one.best_trial.params == two.best_trial.params and one.best_value == two.best_value
    assert one.trials[0].user_attrs["recipe"]["feature_block"] == "mixed10"  # the baseline comes first
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = run_study(data, base, fixed, trials=4, timeout=None, seed=5, storage=storage)
    kept = [(t.number, t.params) for t in first.trials]
    again = run_study(data, base, fixed, trials=7, timeout=None, seed=5, storage=storage)
    assert finished(again) == 7
    assert [(t.number, t.params) for t in again.trials[:4]] == kept


@pytest.mark.parametrize("given, words", [
    ({"timeout": "ten minutes"}, "--timeout takes seconds"),
    ({"search": "slow"}, "'search' setting (--search) must be a str among"),
    ({"pooling": "sum"}, "'pooling' setting (--pooling)"),
    ({"l2": 0}, "'l2' setting (--l2) must be a float in the range (0, inf)"),
    ({"feature_block": "mixed8+mixed8"}, "two or three of them joined by +"),
    ({"feature_block": "mixed4"}, "a feature block is one of mixed5"),
])
def test_search_settings_are_checked_before_any_image_is_read(tmp_path, given, words):
    with pytest.raises(SettingError, match=re.escape(words)):
        resolve("train", {"data": str(tmp_path / "nowhere"), **given})


def test_tune_refuses_the_settings_it_does_not_use(tmp_path):
    with pytest.raises(SettingError, match="not used by tune"):
        resolve("tune", {"data": str(tmp_path), "fine_tune_epochs": 3})


# --- on real photos and the shared weights


@pytest.fixture(scope="module")
def flowers_small(tmp_path_factory):
    if not FLOWERS.is_dir():
        pytest.skip(f"needs {FLOWERS}")
    return copy_subset(FLOWERS, tmp_path_factory.mktemp("flowers-search"), per_class=10)


@requires_shared
def test_default_train_searches_refits_and_replays_its_choice(flowers_small, tmp_path):
    import inceptune

    result = inceptune.train(str(flowers_small), out=str(tmp_path / "run"), weights=str(NARROW_WEIGHTS),
                             image_size=SIZE, test_split=0.2, fine_tune_epochs=1)
    m = result.metrics
    search = m["search"]
    assert search["mode"] == "quick" and search["tried"]
    assert search["stopped"] is None and "budget_seconds" not in search
    assert search["cv_accuracy"] >= search["baseline"]["cv_accuracy"]
    assert m["refit"]["on"] == "train + val" and m["refit"]["images"] == 40
    assert m["baseline"]["test"]["fit_on"] == "train + val"
    config = json.loads((result.run / "config.json").read_text())
    assert config["recipe"]["search"] == "none"
    for name, value in search["recipe"].items():
        if name in config["recipe"]:
            assert config["recipe"][name] == value, name
    assert json.loads((result.run / "search.json").read_text())["recipe"] == search["recipe"]
    report = (result.run / "report.html").read_text()
    assert "Recipe: what chose what" in report and "val figures are the fit on train alone" in report
    # the saved model takes raw pixels and gives what the run scored on its test split
    predicted = inceptune.load(str(result.run), runtime="keras").predict_proba(
        [row["path"] for row in _csv(result.run / "predictions.csv")])
    stored = np.array([[float(row[f"p_{c}"]) for c in ("daisy", "dandelion", "roses", "sunflowers", "tulips")]
                       for row in _csv(result.run / "predictions.csv")])
    np.testing.assert_allclose(predicted.values, stored, atol=2e-4)
    # replaying the run fits the same recipe without a search, from the cache
    again = inceptune.train(config=str(result.run / "config.json"), out=str(tmp_path / "again"))
    assert again.metrics["search"]["mode"] == "none"
    assert again.metrics["search"]["cv_accuracy"] == pytest.approx(search["cv_accuracy"], abs=1e-9)
    assert again.metrics["test"]["accuracy"] == pytest.approx(m["test"]["accuracy"], abs=1e-6)


@requires_shared
def test_tune_killed_mid_study_continues_and_its_best_recipe_replays_with_train(flowers_small, tmp_path):
    study = tmp_path / "study"
    args = ["tune", str(flowers_small), "--weights", str(NARROW_WEIGHTS), "--image-size", str(SIZE),
            "--test-split", "0.2", "--trials", "6", "--head", "linear", "--out", str(study)]
    killed = run_cli(*args, env={**os.environ, SIGNAL_ENV: "trial_finished:3:KILL"}, isolated=True)
    assert killed.returncode == -9
    before = json.loads((study / "tune.json").read_text())["trials"]
    done = [t for t in before if t["state"] in ("complete", "pruned")]
    assert len(done) == 3
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads((study / "tune.json").read_text())["trials"]
    assert len([t for t in after if t["state"] in ("complete", "pruned")]) == 6
    assert [(t["number"], t["params"], t["cv_accuracy"]) for t in after[:3]] == \
        [(t["number"], t["params"], t["cv_accuracy"]) for t in done]
    assert (study / "history.png").stat().st_size > 0
    best = json.loads((study / "best.json").read_text())
    replay = run_cli("train", "--config", str(study / "best.json"), "--fine-tune-epochs", "0", "--out",
                     str(tmp_path / "run"))
    assert replay.returncode == 0, replay.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["search"]["mode"] == "none"
    assert metrics["search"]["cv_accuracy"] == pytest.approx(best["resolved"]["cv_accuracy"], abs=0.01)


def _csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@requires_shared
def test_two_blocks_side_by_side_make_a_model_that_loads_predicts_explains_and_exports(flowers_small, tmp_path):
    """A concatenated source (mixed8 + mixed10, avg and max each): the saved model computes the features
    the cache holds, so Keras, Grad-CAM and ONNX Runtime agree with what the run scored."""
    import inceptune

    result = inceptune.train(str(flowers_small), out=str(tmp_path / "run"), weights=str(NARROW_WEIGHTS),
                             image_size=SIZE, test_split=0.2, search="none", head="linear",
                             feature_block="mixed8+mixed10", pooling="avgmax", fine_tune_epochs=0)
    rows = _csv(result.run / "predictions.csv")
    classes = json.loads((result.run / "labels.json").read_text())["classes"]
    stored = np.array([[float(row[f"p_{c}"]) for c in classes] for row in rows])
    model = inceptune.load(str(result.run), runtime="keras")
    np.testing.assert_allclose(model.predict_proba([row["path"] for row in rows]).values, stored, atol=2e-4)
    from PIL import Image

    width, height = Image.open(rows[0]["path"]).size
    heatmap = model.explain(rows[0]["path"])["heatmap"]  # over the deepest block of the source, mixed10
    assert heatmap.shape == (height, width) and np.isfinite(heatmap).all()
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0  # (at 75x75 mixed10 is one cell: a flat map)
    exported = inceptune.export(str(result.run), "onnx")
    assert exported["max_abs_diff"] < 1e-4
    onnx = inceptune.load(str(result.run), runtime="onnx")
    np.testing.assert_allclose(onnx.predict_proba([row["path"] for row in rows]).values, stored, atol=1e-3)
