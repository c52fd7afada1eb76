"""ImageNet top-k: the shipped class names, decoding, and the weights it needs."""

import json

import keras
import numpy as np
import pytest

import inceptune
import inceptune.data.images
import inceptune.data.pipeline
from conftest import SHARED, SHARED_WEIGHTS
from inceptune.errors import UserError
from inceptune.inference.imagenet import decode_top, imagenet_classes

LABELS = SHARED / "labels" / "imagenet_class_index.json"
CHECK_PHOTO = SHARED / "datasets" / "imagenet_check" / "grace_hopper.jpg"


@pytest.mark.skipif(not LABELS.is_file(), reason=f"needs {LABELS}")
def test_shipped_class_names_are_keras_imagenet_index():
    reference = json.loads(LABELS.read_text())
    assert [list(c) for c in imagenet_classes()] == [reference[str(i)] for i in range(1000)]


def test_decode_top_ranks_by_probability():
    p = np.zeros(1000)
    p[[652, 3, 999]] = [0.7, 0.2, 0.1]
    top = decode_top(p, top=3)
    assert [t["index"] for t in top] == [652, 3, 999]
    assert top[0]["label"] == "military_uniform" and top[0]["wnid"] == "n03763968"


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason=f"needs {SHARED_WEIGHTS}")
def test_weights_without_a_classifier_top_are_refused_in_one_sentence():
    with pytest.raises(UserError, match="no ImageNet classifier top") as info:
        inceptune.predict_imagenet([str(CHECK_PHOTO)], weights=str(SHARED_WEIGHTS))
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not CHECK_PHOTO.is_file(), reason=f"needs {CHECK_PHOTO}")
def test_full_weights_file_gives_top_k_with_names(tmp_path):
    # No ImageNet classifier weights can be had offline, so a full InceptionV3 with
    # random weights checks the whole path: loading, preprocess_input, decoding.
    keras.utils.set_random_seed(0)
    full = keras.applications.InceptionV3(weights=None)
    full.save_weights(tmp_path / "full.weights.h5")
    results = inceptune.predict_imagenet([str(CHECK_PHOTO)], top=5, weights=str(tmp_path / "full.weights.h5"))
    top = results[0]["top"]
    assert len(top) == 5 and all(t["label"] == imagenet_classes()[t["index"]][1] for t in top)
    probs = [t["probability"] for t in top]
    assert probs == sorted(probs, reverse=True)
    x = keras.applications.inception_v3.preprocess_input(
        inceptune.data.pipeline.resize_image(inceptune.data.images.load_image(CHECK_PHOTO), 299)[None])
    expected = full.predict_on_batch(x)[0]
    assert probs[0] == pytest.approx(float(expected.max()), rel=1e-4)
