"""Training that goes further: augmented views, class weights, label smoothing, --from saved models."""

import json

import numpy as np
import pytest

import inceptune
from conftest import NARROW_WEIGHTS, SHARED_WEIGHTS, SMALL_SIZE, make_color_dataset, one_sentence_error, requires_shared, run_cli
from inceptune.models.ood import split_outputs
from inceptune.models.parts import model_parts

pytestmark = requires_shared


def _train(data, out, **settings):
    # the dense head's and phase 2's mechanics: the recipe as given, no search, on the narrow network
    base = dict(weights=str(NARROW_WEIGHTS), image_size=SMALL_SIZE, epochs=8, batch_size=16, fine_tune_epochs=0,
                tensorboard=False, search="none", refit=False)
    return inceptune.train(str(data), out=str(out), **{**base, **settings})


def test_augmented_views_are_computed_once_cached_and_trained_on(small_hymenoptera, tmp_path):
    first = _train(small_hymenoptera, tmp_path / "aug", augment="default", aug_views=2, test_split=0.0, image_size=75)
    aug = first.metrics["phase1"]["augmentation"]
    train_images = 30 * 2  # small_hymenoptera: 30 per class in train/
    assert aug["base_passes_per_train_image"] == 3 and aug["params"]["rotation"] == 20
    assert aug["view_passes_computed"] == 2 * train_images and aug["view_passes_from_cache"] == 0
    again = _train(small_hymenoptera, tmp_path / "aug-again", augment="default", aug_views=2, test_split=0.0,
                   image_size=75)
    assert again.metrics["phase1"]["augmentation"]["view_passes_from_cache"] == 2 * train_images
    assert again.metrics["phase1"]["augmentation"]["view_passes_computed"] == 0
    # The views really are different images: their cached features differ from the originals'.
    from inceptune.data.dataset import read_manifest
    from inceptune.features.cache import FeatureCache, default_cache_dir, feature_space
    from inceptune.features.extract import POOLED
    from inceptune.models.weights import resolve_weights
    from inceptune.training.augment import view_records
    from inceptune.vocabulary.policies import resolve_policy

    records = [r for r in read_manifest(first.run / "manifest.csv") if r.split == "train"]
    cache = FeatureCache(default_cache_dir(), feature_space(resolve_weights(str(NARROW_WEIGHTS)), 75))
    views = view_records(records, resolve_policy("default"), 2, 1337)
    original = cache.get(POOLED, records[0].sha256)
    first_view, second_view = (cache.get(POOLED, view[0].sha256) for view in views)
    assert first_view is not None and second_view is not None
    assert np.abs(first_view - original).max() > 1e-3 and np.abs(second_view - first_view).max() > 1e-3


def test_label_smoothing_keeps_the_training_loss_off_zero(tmp_path):
    colors = make_color_dataset(tmp_path / "colors", per_class=20)  # separable: the plain loss goes to zero
    plain = _train(colors, tmp_path / "plain", epochs=30, learning_rate=1e-2, test_split=0.0, image_size=75)
    smooth = _train(colors, tmp_path / "smooth", epochs=30, learning_rate=1e-2, test_split=0.0, image_size=75,
                    label_smoothing=0.2, class_weight="auto")
    plain_loss, smooth_loss = (float(list(csv_rows(r.run / "history.csv"))[-1]["loss"]) for r in (plain, smooth))
    # Binary cross-entropy against smoothed targets (0.9/0.1) cannot go below their entropy, 0.325.
    assert smooth_loss > 0.3 > plain_loss
    assert json.loads((smooth.run / "config.json").read_text())["recipe"]["label_smoothing"] == 0.2


def csv_rows(path):
    import csv

    with open(path) as f:
        yield from csv.DictReader(f)


def test_a_legacy_h5_saved_the_seeds_way_trains_further_on_other_classes(small_hymenoptera, tmp_path):
    import keras

    # The seeds' recipe: InceptionV3 base, GAP, Dense(1024), softmax over their own classes, model.save('.h5').
    base = keras.applications.InceptionV3(weights=str(SHARED_WEIGHTS), include_top=False)
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    x = keras.layers.Dense(64, activation="relu")(x)
    seeds = keras.Model(base.input, keras.layers.Dense(3, activation="softmax")(x))
    first_conv = seeds.get_layer(index=1)
    kernel = first_conv.get_weights()[0] * 1.5  # so the base differs from the shared weights file
    first_conv.set_weights([kernel])
    seeds.save(tmp_path / "retrained_inception_model.h5")

    proc = run_cli("train", str(small_hymenoptera), "--from", str(tmp_path / "retrained_inception_model.h5"),
                   "--image-size", "75", "--epochs", "3", "--fine-tune-epochs", "1", "--batch-size", "16",
                   "--out", str(tmp_path / "run"), "--no-tensorboard")
    assert proc.returncode == 0, proc.stderr
    assert "new head" in " ".join(proc.stderr.split())
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert np.array_equal(backbone.get_layer(index=1).get_weights()[0], kernel)  # its base, below mixed9
    assert json.loads((tmp_path / "run" / "labels.json").read_text())["classes"] == ["ants", "bees"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] > 0.5


def test_a_run_continued_on_the_same_classes_keeps_its_trained_head(trained_run, small_hymenoptera, tmp_path):
    import keras

    from inceptune.data.images import load_image
    from inceptune.data.pipeline import resize_image

    # No epoch in either phase: the continued model is the earlier run's base and head, as they were.
    result = _train(small_hymenoptera, tmp_path / "again", image_size=SMALL_SIZE, from_model=str(trained_run.run),
                    epochs=0, test_split=0.2, calibrate="none")  # a new temperature would change the head
    before, after = (keras.saving.load_model(run / "model.keras") for run in (trained_run.run, result.run))
    images = np.stack([resize_image(load_image(p), SMALL_SIZE)
                       for p in sorted((small_hymenoptera / "val" / "bees").iterdir())[:4]])
    expected = split_outputs(before.predict(images, verbose=0))[0]
    np.testing.assert_allclose(split_outputs(after.predict(images, verbose=0))[0], expected, atol=1e-5)
    assert np.abs(expected - 0.5).max() > 0.05  # a trained head, not an untrained one's 0.5s


def test_a_run_on_the_narrow_network_continues_on_a_network_of_its_width(flowers_run, small_flowers, tmp_path):
    import keras

    from inceptune.data.images import load_image
    from inceptune.data.pipeline import resize_image

    result = _train(small_flowers, tmp_path / "again", from_model=str(flowers_run.run), epochs=0, val_split=0.2,
                    test_split=0.34, calibrate="none")
    before, after = (keras.saving.load_model(run / "model.keras") for run in (flowers_run.run, result.run))
    first_convs = [next(layer for layer in model_parts(m).backbone.layers if isinstance(layer, keras.layers.Conv2D))
                   for m in (before, after)]
    assert [conv.filters for conv in first_convs] == [4, 4]  # 32 x 1/8: the base kept its width
    images = np.stack([resize_image(load_image(p), SMALL_SIZE) for p in sorted((small_flowers / "roses").iterdir())[:3]])
    np.testing.assert_allclose(split_outputs(after.predict(images, verbose=0))[0],
                               split_outputs(before.predict(images, verbose=0))[0], atol=1e-5)


def test_an_h5_with_python_code_is_refused_unless_unsafe(small_hymenoptera, tmp_path):
    import keras

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "code.h5")
    message = one_sentence_error(run_cli("train", str(small_hymenoptera), "--from", str(tmp_path / "code.h5"),
                                         "--out", str(tmp_path / "run")))
    assert "Lambda layers (Python code)" in message and "--unsafe" in message


def test_numpy_arrays_train_the_pretrained_recipe_grayscale_and_one_hot(tmp_path):
    from test_architectures import _shape_image

    rng = np.random.default_rng(1)
    labels = np.arange(90) % 3
    np.save(tmp_path / "X.npy", np.stack([_shape_image(k, rng) for k in labels]).astype("float32") / 255)
    np.save(tmp_path / "y.npy", np.eye(3, dtype="float32")[labels])  # one-hot
    cache = tmp_path / "cache" / "features"
    result = inceptune.train(str(tmp_path / "X.npy"), out=str(tmp_path / "run"), weights=str(SHARED_WEIGHTS),
                             image_size=75, epochs=25, fine_tune_epochs=0, val_split=0.2, test_split=0.2,
                             cache_dir=str(cache), tensorboard=False)
    assert json.loads((result.run / "labels.json").read_text())["classes"] == ["0", "1", "2"]
    config = json.loads((result.run / "config.json").read_text())
    assert config["data"]["data"] == str(tmp_path / "X.npy") and config["resolved"]["data_kind"] == "arrays"
    assert result.metrics["test"]["images"] == 18 and result.metrics["test"]["accuracy"] > 0.6  # chance: 0.33
    written = sorted((tmp_path / "cache" / "arrays").rglob("*.png"))
    assert len(written) == 90
    from PIL import Image

    assert Image.open(written[0]).mode == "L"  # stored as grayscale, expanded to RGB when loaded
    top = inceptune.predict(str(result.run), [str(written[0])])[0]["top"][0]["label"]
    assert top in ("0", "1", "2")


@pytest.mark.parametrize("phase", ["head", "fine-tune"])
def test_lr_find_suggests_a_rate_where_the_loss_falls_fastest(small_hymenoptera, tmp_path, phase):
    from conftest import png_size

    steps = 100 if phase == "head" else 40
    finding = inceptune.lr_find(str(small_hymenoptera), phase=phase, plot=str(tmp_path / "lr.png"), steps=steps,
                                min_lr=1e-6 if phase == "head" else 1e-7, max_lr=10 if phase == "head" else 1e-1,
                                weights=str(NARROW_WEIGHTS), image_size=SMALL_SIZE, batch_size=16)
    assert png_size(tmp_path / "lr.png")[0] > 300
    rates, smoothed = np.array(finding.learning_rates), np.array(finding.smoothed)
    low, high = finding.fastest_range
    assert low <= finding.suggestion <= high
    # Recomputed independently: the smoothed loss drops across the suggested range, and the drop per
    # decade there beats the drop per decade over the whole sweep.
    inside = (rates >= low) & (rates <= high)
    span = max(np.log10(high / low), np.log10(rates[1] / rates[0]))
    fall_inside = (smoothed[inside][0] - smoothed[inside][-1]) / span if inside.sum() > 1 else \
        -np.gradient(smoothed, np.log10(rates))[inside][0]
    fall_overall = (smoothed[0] - smoothed.min()) / np.log10(rates[-1] / rates[0])
    assert fall_inside > 0 and fall_inside > fall_overall


def test_a_multilabel_csv_trains_a_sigmoid_head_with_per_label_metrics(tmp_path):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(3)
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 190, 30)}
    rows = ["path,labels"]
    for i in range(72):
        present = [c for c in colours if rng.random() < 0.5]
        grey = int(rng.integers(100, 160))
        image = Image.new("RGB", (96, 96), (grey, grey, grey))
        draw = ImageDraw.Draw(image)
        for k, name in enumerate(present):
            x, y = 4 + 30 * k + int(rng.integers(0, 4)), int(rng.integers(10, 50))
            draw.rectangle([x, y, x + 24, y + 34], fill=colours[name])
        (tmp_path / "images").mkdir(exist_ok=True)
        image.save(tmp_path / "images" / f"{i:03d}.png")
        rows.append(f"images/{i:03d}.png,{'|'.join(present)}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")

    result = inceptune.train(str(tmp_path / "labels.csv"), out=str(tmp_path / "run"), weights=str(SHARED_WEIGHTS),
                             image_size=75, epochs=40, fine_tune_epochs=0, val_split=0.2, test_split=0.25,
                             tensorboard=False)
    classes = ["blue", "green", "red"]
    labels = json.loads((result.run / "labels.json").read_text())
    assert labels["classes"] == classes and labels["task"] == "multilabel"
    thresholds = labels["thresholds"]  # one per label, chosen on val for F1
    assert list(thresholds) == classes and all(0 < t < 1 for t in thresholds.values())
    evaluation = json.loads((result.run / "evaluation.json").read_text())
    assert set(evaluation["per_label"]) == set(classes) and evaluation["thresholds"] == thresholds
    assert evaluation["f1_macro"] > 0.7 and evaluation["hamming_loss"] < 0.25  # chance: about 0.5 and 0.5
    assert evaluation["f1_macro"] >= evaluation.get("at_0.5", evaluation)["f1_macro"]  # the test split, held out
    lo, hi = evaluation["ci95"]["f1_macro"]
    assert lo <= evaluation["f1_macro"] <= hi
    import keras

    model = keras.saving.load_model(result.run / "model.keras")
    output = model_parts(model).output
    assert output.units == 3 and output.activation.__name__ == "sigmoid"
    image = tmp_path / "images" / "000.png"
    answer = inceptune.predict(str(result.run), [str(image)])[0]
    raw = split_outputs(model.predict(np.asarray(Image.open(image), "float32")[None], verbose=0))[0][0]
    assert [answer["probabilities"][c] for c in classes] == pytest.approx(raw.tolist(), abs=1e-5)
    assert answer["labels"] == [c for c, p in zip(classes, raw) if p >= thresholds[c]]
    # Grad-CAM explains with the model's own sigmoids, not a softmax over the labels.
    explained = inceptune.load(str(result.run)).explain(str(image))
    assert [explained["probabilities"][c] for c in ("blue", "green", "red")] == pytest.approx(raw.tolist(), abs=1e-5)
    assert explained["heatmap"].shape == (96, 96)


def test_cosine_with_warmup_and_unfreeze_top_are_recorded_per_epoch(small_hymenoptera, tmp_path):
    import csv

    result = _train(small_hymenoptera, tmp_path / "run", epochs=6, schedule="cosine", warmup_epochs=2,
                    fine_tune_epochs=2, unfreeze_top=1, test_split=0.0)
    with open(result.run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    head = [float(r["learning_rate"]) for r in rows if r["phase"] == "head"]
    assert head[0] < head[1] and head[1] == pytest.approx(1e-3, rel=0.2)  # warming up to --lr
    assert head[2] > head[3] > head[4] > head[5]  # then decaying
    config = json.loads((result.run / "config.json").read_text())
    assert config["recipe"]["unfreeze_from"] == "mixed10" and config["recipe"]["schedule"] == "cosine"
    assert "(--unfreeze-top) must be an int in the range [1, 11] or None; got 12 instead" in one_sentence_error(
        run_cli("train", str(small_hymenoptera), "--unfreeze-top", "12"))


def test_mixed_precision_under_a_mirrored_strategy_trains_with_float32_outputs(small_hymenoptera, tmp_path):
    import keras

    result = _train(small_hymenoptera, tmp_path / "run", image_size=75, epochs=4, fine_tune_epochs=1,
                    test_split=0.0, precision="mixed", distribute="mirrored",
                    weights=str(SHARED_WEIGHTS))  # it learns: pretrained features
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    assert result.metrics["val"]["accuracy"] > 0.6
    model = keras.saving.load_model(result.run / "model.keras")
    assert model_parts(model).output.dtype_policy.name == "float32"
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert backbone.layers[1].dtype_policy.name == "mixed_bfloat16"  # on this CPU; mixed_float16 on GPUs
    config = json.loads((result.run / "config.json").read_text())
    assert config["run"]["precision"] == "mixed" and config["run"]["distribute"] == "mirrored"


def test_phase_2_can_train_on_the_cached_views_instead_of_images(small_hymenoptera, tmp_path):
    # (Gradual unfreezing with per-block rates on images augmented on the fly: the resume test above.)
    views = _train(small_hymenoptera, tmp_path / "views", image_size=75, epochs=4, test_split=0.0, augment="light",
                   aug_views=1, fine_tune_epochs=1, fine_tune_augment="views")
    assert views.metrics["phase2"]["augment"] == "views" and views.metrics["phase2"]["examples_per_epoch"] == 120
    assert views.metrics["phase2"]["inputs"] == "cached activations"
