"""Weights resolution, the backbone's blocks and freezing, the feature cache."""

import json
import socket

import keras
import numpy as np
import pytest

from conftest import NARROW_WEIGHTS, SHARED_WEIGHTS, run_cli
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.models.backbone import block_start, boundary_layer, build_backbone, freeze, top_of_backbone
from inceptune.models.weights import ENV_VAR, resolve_weights


@pytest.fixture(scope="module")
def random_backbone():
    keras.utils.set_random_seed(0)
    return build_backbone(resolve_weights(str(NARROW_WEIGHTS)), 75)


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
    assert cache.get("avg-pool", "ab" * 32).dtype == np.float32
    assert FeatureCache(tmp_path, {"weights": "b", "image_size": 75}).get("avg-pool", "ab" * 32) is None
    shard = next((cache.dir / "shards").rglob("*.bin"))
    damaged = bytearray(shard.read_bytes())
    damaged[0] ^= 0xFF
    shard.write_bytes(bytes(damaged))
    assert cache.get("avg-pool", "ab" * 32) is None and not cache.has("avg-pool", "ab" * 32)  # computed again
    legacy = cache.legacy_path("max-pool", "cd" * 32)  # inceptune before 0.6: one .npy per entry
    legacy.parent.mkdir(parents=True)
    np.save(legacy, np.ones(3, "float32"))
    assert cache.has("max-pool", "cd" * 32) and cache.missing(["max-pool"], ["cd" * 32, "ef" * 32]) == ["ef" * 32]
    np.testing.assert_array_equal(cache.get("max-pool", "cd" * 32), np.ones(3))
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_the_cache_packs_entries_into_few_files_in_float16(tmp_path):
    rng = np.random.default_rng(0)
    cache = FeatureCache(tmp_path, {"weights": "a", "image_size": 75})
    values = {f"{i:064x}": rng.uniform(0, 8, (8, 8, 16)).astype("float32") for i in range(300)}
    for sha, array in values.items():
        cache.put("before-mixed9", sha, array)
        cache.put("avg-pool", sha, array.mean(axis=(0, 1)))
    cache.put("avg-pool", "ff" * 32, np.array([1e6, -3.0], "float32"))  # beyond float16's range: kept float32
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(files) <= 8  # space.json, the index (and its WAL), one shard per kind: not 601 files
    shards = sum(f.stat().st_size for f in files if f.suffix == ".bin")
    assert shards == 300 * (8 * 8 * 16 + 16) * 2 + 2 * 4  # two bytes a value
    again = FeatureCache(tmp_path, {"weights": "a", "image_size": 75})  # another process, later
    for sha, array in values.items():
        np.testing.assert_allclose(again.get("before-mixed9", sha), array, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(again.get("avg-pool", "ff" * 32), [1e6, -3.0])
    assert again.missing(["avg-pool", "before-mixed9"], ["ff" * 32, next(iter(values))]) == ["ff" * 32]


def test_cache_info_and_prune(tmp_path):
    import os
    import time

    from inceptune.features.cache_admin import cache_info, prune_cache

    old = FeatureCache(tmp_path, {"weights": "old", "image_size": 75})
    old.put("avg-pool", "ab" * 32, np.ones(4, "float32"))
    kept = FeatureCache(tmp_path, {"weights": "new", "image_size": 75})
    kept.put("avg-pool", "ab" * 32, np.ones(4, "float32"))
    kept.put("avg-pool", "ab" * 32, np.zeros(4, "float32"))  # written again: 8 bytes nothing points to
    orphan = kept.dir / "shards" / "avg-pool" / "12345-dead-0000.bin"  # a killed writer's file, never indexed
    orphan.write_bytes(b"x" * 100)
    week_ago = time.time() - 7 * 86400
    os.utime(old.dir / "space.json", (week_ago, week_ago))
    os.utime(orphan, (week_ago, week_ago))
    info = {s["key"]: s for s in cache_info(tmp_path)}
    assert info[kept.dir.name]["entries"] == {"avg-pool": 1} and info[kept.dir.name]["images"] == 1
    assert info[kept.dir.name]["unreferenced_bytes"] == 8 + 100
    removed = prune_cache(tmp_path, older_than_days=3)
    assert removed["spaces"] == [old.dir.name] and removed["files"] == 1 and not orphan.exists()
    assert [s["key"] for s in cache_info(tmp_path)] == [kept.dir.name]
    np.testing.assert_array_equal(kept.get("avg-pool", "ab" * 32), np.zeros(4))


def test_cache_info_and_prune_on_the_command_line(tmp_path):
    cache = FeatureCache(tmp_path, {"weights": "a", "image_size": 75})
    cache.put("avg-pool", "ab" * 32, np.ones(4, "float32"))
    cache.put("before-mixed9", "ab" * 32, np.ones((2, 2, 3), "float32"))
    info = run_cli("cache", "info", "--cache-dir", str(tmp_path), "--json")
    assert info.returncode == 0, info.stderr
    (space,) = json.loads(info.stdout)
    assert space["entries"] == {"avg-pool": 1, "before-mixed9": 1} and space["images"] == 1
    assert space["space"] == {"weights": "a", "image_size": 75}
    text = run_cli("cache", "info", "--cache-dir", str(tmp_path))
    assert "1 images, 2 entries" in text.stdout and "before-mixed9: 1" in text.stdout
    pruned = run_cli("cache", "prune", "--cache-dir", str(tmp_path), "--older-than", "0")
    assert pruned.returncode == 0 and "Removed 1 space(s)" in pruned.stdout
    assert "The feature cache is empty." in run_cli("cache", "info", "--cache-dir", str(tmp_path)).stdout


def test_a_backbone_built_again_from_the_same_file_has_its_weights_and_another_file_its_own(tmp_path):
    """The weights of a file are read once per process (models/backbone.py keeps them by content): a second
    backbone of the same file has exactly its weights, and a file with other content is read for itself."""
    from inceptune.architectures.inception_v3 import inception_v3_base
    from inceptune.models.backbone import save_backbone_weights

    first, again = (build_backbone(resolve_weights(str(NARROW_WEIGHTS)), 75) for _ in range(2))
    assert first is not again
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), again.get_weights()))
    changed = inception_v3_base((75, 75, 3), 0.125)
    changed.set_weights([w * 1.5 for w in first.get_weights()])
    other = save_backbone_weights(changed, tmp_path / "other.weights.h5", 0.125)
    theirs = build_backbone(resolve_weights(str(other)), 75)
    assert not np.array_equal(theirs.get_weights()[0], first.get_weights()[0])
    reread = inception_v3_base((75, 75, 3), 0.125)  # the file itself, read by Keras
    reread.load_weights(str(other))
    assert all(np.array_equal(a, b) for a, b in zip(theirs.get_weights(), reread.get_weights()))
