"""Weights resolution, the backbone's blocks and freezing, the feature cache."""

import socket

import keras
import numpy as np
import pytest

from conftest import SHARED_WEIGHTS
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.models.backbone import block_start, boundary_layer, build_backbone, freeze, top_of_backbone
from inceptune.models.weights import ENV_VAR, resolve_weights


@pytest.fixture(scope="module")
def random_backbone():
    keras.utils.set_random_seed(0)
    return build_backbone(resolve_weights("none"), 75)


def test_unfreezing_from_mixed9_is_the_classic_recipes_layers_249_on(random_backbone):
    assert block_start(random_backbone, "mixed9") == 249
    assert random_backbone.layers[248].name == "mixed8"


@pytest.mark.parametrize("block", ["mixed0", "mixed5", "mixed9"])
def test_top_of_backbone_from_cached_activations_equals_the_full_backbone(random_backbone, block):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
    boundary = keras.Model(random_backbone.input, boundary_layer(random_backbone, block).output)
    full = random_backbone.predict_on_batch(x)
    via_top = top_of_backbone(random_backbone, block).predict_on_batch(boundary.predict_on_batch(x))
    np.testing.assert_allclose(via_top, full, rtol=1e-5, atol=1e-5)


def test_freeze_trains_only_the_top_blocks_and_never_batchnorm(random_backbone):
    freeze(random_backbone, "mixed9")
    trainable = [layer for layer in random_backbone.layers if layer.trainable_weights]
    assert trainable and all(random_backbone.layers.index(l) >= 249 for l in trainable)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in trainable)
    freeze(random_backbone, None)
    assert not random_backbone.trainable_weights


def test_unknown_block_is_a_user_error(random_backbone):
    with pytest.raises(UserError, match="Unknown block 'mixed11'"):
        block_start(random_backbone, "mixed11")


def test_weights_none_and_missing_paths(tmp_path, monkeypatch):
    assert resolve_weights("none").path is None
    with pytest.raises(UserError, match="does not exist.*--weights"):
        resolve_weights(str(tmp_path / "nope.h5"))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.h5"))
    with pytest.raises(UserError, match=f"{ENV_VAR} points to"):
        resolve_weights("imagenet")


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason=f"needs {SHARED_WEIGHTS}")
def test_environment_variable_points_imagenet_at_a_local_file(monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(SHARED_WEIGHTS))
    weights = resolve_weights("imagenet")
    assert weights.path == SHARED_WEIGHTS.resolve() and weights.fingerprint.startswith("sha256-0f3ddfd8")


def _online() -> bool:
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(_online(), reason="this machine can download the weights, so the offline message cannot show")
def test_offline_imagenet_says_which_flag_and_variable_to_use(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(UserError) as info:
        resolve_weights("imagenet")
    message = str(info.value)
    assert "--weights PATH" in message and ENV_VAR in message and "\n" not in message


def test_wrong_weights_file_is_a_user_error(tmp_path):
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(UserError, match="does not fit InceptionV3"):
        build_backbone(resolve_weights(str(tmp_path / "other.weights.h5")), 75)


def test_cache_round_trip_and_damaged_entries(tmp_path):
    cache = FeatureCache(tmp_path, {"weights": "a", "image_size": 75})
    cache.put("avg-pool", "ab" * 32, np.arange(4, dtype="float32"))
    np.testing.assert_array_equal(cache.get("avg-pool", "ab" * 32), np.arange(4))
    assert FeatureCache(tmp_path, {"weights": "b", "image_size": 75}).get("avg-pool", "ab" * 32) is None
    cache.path("avg-pool", "ab" * 32).write_bytes(b"\x93NUMPY garbage")
    assert cache.get("avg-pool", "ab" * 32) is None and not cache.has("avg-pool", "ab" * 32)
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no temporaries
