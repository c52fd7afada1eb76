"""Inception networks from scratch: blocks, whole networks, counts, diagrams, and training on arrays."""

import csv
import json
import re
import shutil

import keras
import numpy as np
import pytest
from PIL import Image, ImageDraw

import inceptune
from conftest import run_cli
from inceptune.architectures import blocks
from inceptune.architectures.networks import googlenet, inception_v3, single_module_net
from inceptune.architectures.profile import count_macs, describe, to_dot

layers = keras.layers


def test_the_keras_guide_single_module_net_has_exactly_83_760_487_trainable_parameters():
    model = single_module_net((48, 48, 1), 7)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == model.count_params() == 83_760_487
    assert model.output_shape == (None, 7)


def test_build_inception_v3_matches_keras_applications_and_5_7_gmacs():
    proc = run_cli("build", "inception-v3", "--input-shape", "299,299,3", "--classes", "1000", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    reference = keras.applications.InceptionV3(weights=None, input_shape=(299, 299, 3), classes=1000)
    assert info["parameters"] == reference.count_params() == 23_851_784
    assert info["macs"] == count_macs(reference)  # the same network, counted the same way
    assert 5.6e9 < info["macs"] < 5.8e9
    readable = run_cli("build", "inception-v3")
    assert "parameters: 23,851,784" in readable.stdout and "(5.71 G)" in readable.stdout


def test_googlenet_matches_the_published_bvlc_googlenet_count():
    # Reference: BVLC GoogLeNet, the Caffe Model Zoo reproduction of Szegedy et al. (2014), Table 1
    # (models/bvlc_googlenet/deploy.prototxt, no auxiliary classifiers): 6,998,552 parameters, as
    # tabulated by HPE's Deep Learning Benchmarking Suite (dlcookbook-dlbs, "googlenet").
    model = googlenet((224, 224, 3), 1000)
    assert model.count_params() == 6_998_552
    assert 1.5e9 < count_macs(model) < 1.6e9  # the paper's "1.5 billion multiply-adds"
    with_aux = googlenet((224, 224, 3), 1000, aux_classifiers=True)
    assert [o.shape for o in with_aux.outputs] == [(None, 1000)] * 3


@pytest.mark.parametrize("block, args, channels", [
    (blocks.naive_module, (8, 16, 4), 8 + 16 + 4 + 12),  # the pooled input's 12 channels pass through
    (blocks.reduction_module, (8, 4, 16, 2, 4, 6), 8 + 16 + 4 + 6),
    (blocks.inception_v3_a, (5,), 64 + 64 + 96 + 5),
    (blocks.inception_v3_b, (16, 24), 4 * 24),
    (blocks.inception_v3_c, (8, 6, 10, 4), 8 + 2 * 6 + 2 * 6 + 4),
])
def test_blocks_concatenate_their_branches(block, args, channels):
    inputs = keras.Input((17, 17, 12))
    out = block(inputs, *args, name="b")
    assert tuple(out.shape) == (None, 17, 17, channels)


def test_grid_reductions_halve_the_grid():
    a = blocks.grid_reduction_v3_a(keras.Input((35, 35, 288)), name="r")
    b = blocks.grid_reduction_v3_b(keras.Input((17, 17, 768)), name="s")
    assert tuple(a.shape) == (None, 17, 17, 768) and tuple(b.shape) == (None, 8, 8, 1280)


def test_any_input_size_channels_and_width_and_built_in_layers_only(tmp_path):
    model = inception_v3((75, 75, 1), classes=4, width=0.25)
    x = np.random.default_rng(0).random((2, 75, 75, 1)).astype("float32")
    out = model.predict(x, verbose=0)
    assert out.shape == (2, 4) and np.allclose(out.sum(axis=1), 1, atol=1e-5)
    assert describe(model)["parameters"] < inception_v3((75, 75, 1), classes=4).count_params() / 8
    model.save(tmp_path / "m.keras")  # built-in layers only: reloads in safe mode, no custom objects
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.allclose(again.predict(x, verbose=0), out, atol=1e-6)


def test_bad_build_requests_are_one_sentence_errors():
    for args, message in ((("resnet",), "Unknown architecture 'resnet'"),
                          (("inception-v3", "--input-shape", "48,48,1"), "at least 75x75"),
                          (("googlenet", "--width", "2"), "googlenet takes none of --width"),
                          (("googlenet", "--input-shape", "224x224"), "--input-shape must be H,W,C")):
        proc = run_cli("build", *args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, args


def _plain_layout(model) -> dict[str, tuple[float, float]]:
    """Node name -> (x, y) from Graphviz's own layout of the diagram."""
    plain = to_dot(model).create(format="plain").decode()
    labels = {}
    for line in plain.splitlines():
        parts = line.split(" ", 6)
        if parts[0] == "node":
            name = re.search(r"<b>([^<]+)</b>", line)
            labels[name.group(1) if name else parts[1]] = (float(parts[2]), float(parts[3]))
    return labels


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (Debian package graphviz; .ci/run "
                                                         "installs it)")
def test_diagram_is_written_and_draws_the_branches_side_by_side(tmp_path):
    proc = run_cli("build", "single-module", "--input-shape", "48,48,1", "--classes", "7",
                   "--plot", str(tmp_path / "net.png"))
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "net.png") as png:
        assert png.format == "PNG" and png.width > 600
    layout = _plain_layout(single_module_net((48, 48, 1), 7))
    firsts = [layout[n] for n in ("tower_1_1x1", "tower_2_1x1", "tower_3_pool")]
    assert len({y for _, y in firsts}) == 1  # the three branches start on one row...
    assert len({x for x, _ in firsts}) == 3  # ...side by side
    assert layout["inception"][1] < firsts[0][1] < layout["image"][1]  # below the input, above the concatenation
    proc = run_cli("build", "googlenet", "--plot", str(tmp_path / "net.svg"))
    assert proc.returncode == 0 and (tmp_path / "net.svg").read_text().lstrip().startswith("<?xml")


def test_missing_graphviz_says_how_to_install_it(tmp_path):
    proc = run_cli("build", "single-module", "--input-shape", "48,48,1", "--plot", str(tmp_path / "x.png"),
                   env={"PATH": str(tmp_path)})  # no `dot` on this PATH
    assert proc.returncode == 2 and "apt-get install graphviz" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


# --- training from scratch on small generated grayscale images

CLASSES = ("circle", "square", "triangle")


def _shape_image(kind: int, rng) -> np.ndarray:
    img = Image.new("L", (48, 48), 0)
    draw = ImageDraw.Draw(img)
    cx, cy = rng.integers(14, 34, 2)
    r = int(rng.integers(8, 13))
    if kind == 0:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == 1:
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=255)
    noisy = np.asarray(img, np.float32) * 0.7 + rng.normal(40, 25, (48, 48))
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shapes():
    rng = np.random.default_rng(0)
    labels = np.arange(150) % 3
    return np.stack([_shape_image(k, rng) for k in labels]), labels


SCRATCH = ("--arch", "mini-inception", "--weights", "none", "--channels", "1", "--width", "0.5", "--epochs", "15",
           "--batch-size", "16")


def test_mini_inception_from_a_fer_style_csv_beats_chance_and_predicts_rgb_files(shapes, tmp_path):
    images, labels = shapes
    with open(tmp_path / "fer.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for i, (image, label) in enumerate(zip(images, labels)):
            usage = "Training" if i < 105 else "PublicTest" if i < 126 else "PrivateTest"
            writer.writerow([label, " ".join(map(str, image.ravel())), usage])
        writer.writerow([1, "1 2 3", "Training"])  # a broken row: skipped with its reason
    proc = run_cli("train", str(tmp_path / "fer.csv"), *SCRATCH, "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "do not make a square image" in proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["images"] == 24 and metrics["test"]["accuracy"] >= 0.75  # chance: 1/3
    assert json.loads((tmp_path / "run" / "labels.json").read_text())["classes"] == ["angry", "disgust", "fear"]
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "errors.png").is_file()
    # The saved model takes raw RGB files like every inceptune model (grayscale conversion inside).
    Image.fromarray(np.stack([images[1]] * 3, axis=-1)).resize((96, 96)).save(tmp_path / "square.png")
    predicted = inceptune.predict(str(tmp_path / "run"), [str(tmp_path / "square.png")], top=1)[0]
    assert predicted["top"][0]["label"] == "disgust"  # FER's class 1, our squares


@pytest.mark.slow  # arrays from scratch: the FER-style CSV test trains the same network in the fast tier
def test_mini_inception_from_numpy_arrays_beats_chance(shapes, tmp_path):
    images, labels = shapes
    np.save(tmp_path / "X.npy", images.astype("float32") / 255.0)  # [0, 1] floats are scaled back
    np.save(tmp_path / "y.npy", np.array(CLASSES)[labels])
    result = inceptune.train(str(tmp_path), out=str(tmp_path / "run"), arch="mini-inception", weights="none",
                             channels=1, width=0.5, epochs=15, batch_size=16, test_split=0.2)
    assert result.metrics["test"]["accuracy"] >= 0.75
    assert json.loads((result.run / "labels.json").read_text())["classes"] == list(CLASSES)
    proc = run_cli("evaluate", str(result.run))
    assert proc.returncode == 2 and "trained on arrays" in proc.stderr


def test_scratch_training_mistakes_are_one_sentence_errors(shapes, tmp_path):
    images, labels = shapes
    np.save(tmp_path / "X.npy", images[:10])
    np.save(tmp_path / "y.npy", labels[:9])
    for args, message in (((str(tmp_path), "--arch", "mini-inception"), "needs --weights none"),
                          ((str(tmp_path), "--arch", "mini-inception", "--weights", "none"), "differ in number"),
                          ((str(tmp_path), "--arch", "vgg", "--weights", "none"), "(--arch) must be a str among"),
                          ((str(tmp_path), "--arch", "googlenet", "--weights", "none", "--augment", "light"),
                           "'augment' setting (--augment) is not used by train --arch")):
        proc = run_cli("train", *args, "--out", str(tmp_path / "run"))
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, args
    assert not (tmp_path / "run").exists()


def test_from_scratch_on_a_folder_of_colour_images_in_grayscale(tmp_path):
    from conftest import make_color_dataset
    from contract import check_run_folder

    data = make_color_dataset(tmp_path / "data", per_class=20)  # red and blue differ in luminance too
    result = inceptune.train(str(data), out=str(tmp_path / "run"), arch="mini-inception", weights="none",
                             channels=1, width=0.5, image_size=48, epochs=20, batch_size=4, test_split=0.25)
    assert check_run_folder(result.run) == {"classes": ["blue", "red"], "task": "multiclass"}
    config = json.loads((result.run / "config.json").read_text())
    assert config["resolved"]["input_shape"] == [48, 48, 1] and config["resolved"]["data_kind"] == "images"
    assert result.metrics["test"]["images"] == 10 and result.metrics["test"]["accuracy"] >= 0.8
    # evaluate works on a folder-trained from-scratch run, through the saved model on the files.
    proc = run_cli("evaluate", str(result.run), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
