"""Features as a product: files, shards, resumption, Ray, separate classifiers, similarity search."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import inceptune
from conftest import (EXPORTS, SHARED_WEIGHTS, SMALL_SIZE, cached_entries, copy_subset, one_sentence_error, requires_shared,
                      run_cli)
from inceptune.features.files import read_features_file
from inceptune.hooks import SIGNAL_ENV

pytestmark = requires_shared
COMMON = ("--weights", str(SHARED_WEIGHTS), "--image-size", str(SMALL_SIZE), "--layer", "mixed8")


@pytest.fixture(scope="module")
def flowers_features(small_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "flowers.parquet"
    proc = run_cli("features", str(small_flowers), "--out", str(out), *COMMON)
    assert proc.returncode == 0, proc.stderr
    return out


def test_features_file_has_a_row_per_image_with_label_hash_and_vector(flowers_features, small_flowers, tmp_path):
    table = read_features_file(flowers_features)
    assert len(table.paths) == 60 and table.vectors.shape == (60, 1280)  # mixed8 has 1280 channels
    assert sorted(set(table.labels)) == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert all(len(h) == 64 for h in table.hashes)
    assert table.meta["layer"] == "mixed8" and table.meta["pooling"] == "avg" and table.meta["image_size"] == 150
    # .npz holds the same rows; max pooling gives other vectors; both came from the cache or the network.
    proc = run_cli("features", str(small_flowers), "--out", str(tmp_path / "f.npz"), *COMMON)
    assert proc.returncode == 0 and "60 from cache, 0 computed" in proc.stderr
    npz = read_features_file(tmp_path / "f.npz")
    assert npz.paths == table.paths and np.array_equal(npz.vectors, table.vectors)
    proc = run_cli("features", str(small_flowers), "--out", str(tmp_path / "max.parquet"), *COMMON, "--pooling", "max")
    assert proc.returncode == 0
    assert not np.allclose(read_features_file(tmp_path / "max.parquet").vectors, table.vectors)


def test_shards_cover_every_image_exactly_once(flowers_features, small_flowers, tmp_path):
    seen = []
    for i in range(2):
        proc = run_cli("features", str(small_flowers), "--out", str(tmp_path / f"s{i}.parquet"), *COMMON,
                       "--shard", f"{i}/2")
        assert proc.returncode == 0, proc.stderr
        seen += read_features_file(tmp_path / f"s{i}.parquet").paths
    assert sorted(seen) == sorted(read_features_file(flowers_features).paths) and len(set(seen)) == len(seen)
    assert "--shard must look like i/N" in one_sentence_error(
        run_cli("features", str(small_flowers), "--out", str(tmp_path / "x.parquet"), "--shard", "2"))


def test_a_killed_extraction_resumes_with_only_the_missing_images(small_flowers, tmp_path):
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "inceptune", "features", str(small_flowers), "--out", str(tmp_path / "f.parquet"),
            *COMMON, "--batch-size", "4"]
    env = {**os.environ, "INCEPTUNE_CACHE": str(cache)}
    killed = subprocess.run(args, env={**env, SIGNAL_ENV: "feature_cached:20:KILL"}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL  # killed right after its 20th vector reached the cache
    entries = cached_entries(cache)  # each whole (length and checksum), or not indexed at all
    assert len(entries) == 20 and all(v is not None for v in entries.values())
    assert not (tmp_path / "f.parquet").exists()
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "60 images, 20 from cache, 40 computed" in again.stderr
    assert len(read_features_file(tmp_path / "f.parquet").paths) == 60


# Ray runs in a process of its own, as a user's driver does: a Ray driver keeps its cluster and its SIGTERM
# handler for the life of the process, and the test runner's worker should have neither.
RAY_DRIVER = """
import json, sys
import ray
import inceptune
from inceptune.engines.ray_engine import predict_with_ray
a = json.loads(sys.argv[1])
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
try:
    summary = inceptune.extract_features_file(a["data"], a["out"], layer="mixed8", image_size=a["size"],
                                              weights=a["weights"], cache_dir=a["cache"], engine="ray")
    on_ray = predict_with_ray(a["run"], a["images"], top=2, batch_size=4)
finally:
    ray.shutdown()
print(json.dumps({"summary": summary, "on_ray": on_ray}, default=float))
"""


@pytest.mark.slow  # the full network in Ray's actors; tests/test_ray_cluster.py checks the engine on the narrow one
@EXPORTS  # one Ray cluster at a time, and none beside an ONNX conversion (tests/test_ray_cluster.py)
def test_ray_engine_writes_the_same_vectors_and_predictions_as_the_local_engine(
        flowers_features, flowers_run, small_flowers, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    images = [str(p) for p in sorted(small_flowers.rglob("*.jpg"))[::12]] + [str(tmp_path / "notes.jpg")]
    subset = copy_subset(small_flowers, tmp_path / "subset", per_class=3)
    given = {"data": str(subset), "out": str(tmp_path / "ray.parquet"), "size": SMALL_SIZE,
             "weights": str(SHARED_WEIGHTS), "cache": str(tmp_path / "own-cache"), "run": str(flowers_run.run),
             "images": images}
    driver = subprocess.run([sys.executable, "-c", RAY_DRIVER, json.dumps(given)], capture_output=True, text=True,
                            timeout=600)
    assert driver.returncode == 0, driver.stderr[-3000:]
    answer = json.loads(driver.stdout.strip().splitlines()[-1])
    summary, on_ray = answer["summary"], answer["on_ray"]
    local = inceptune.predict(str(flowers_run.run), images, top=2, batch_size=4)
    assert [r["path"] for r in on_ray] == images and "error" in on_ray[-1] and "error" in local[-1]
    for a, b in zip(on_ray[:-1], local[:-1]):
        assert a["top"][0]["label"] == b["top"][0]["label"] and a["unknown"] == b["unknown"]
        assert max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in a["probabilities"]) <= 1e-5
    assert summary["computed"] == 15  # its own empty cache: every vector came from the Ray actors
    ours, local = read_features_file(tmp_path / "ray.parquet"), read_features_file(flowers_features)
    row = {h: i for i, h in enumerate(local.hashes)}  # the same photos, copied: the same content hashes
    assert len(ours.hashes) == 15 and set(ours.labels) == set(local.labels)
    assert np.abs(ours.vectors - local.vectors[[row[h] for h in ours.hashes]]).max() <= 1e-4


def test_fit_features_then_predict_with_the_saved_classifier(flowers_features, small_flowers, tmp_path):
    proc = run_cli("fit-features", str(flowers_features), "--classifier", "logreg", "--out", str(tmp_path / "m"),
                   "--folds", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["cv_accuracy_per_fold"]) == 4 and result["cv_accuracy_mean"] > 0.5  # chance: 0.2
    assert result["cv_accuracy_mean"] == pytest.approx(np.mean(result["cv_accuracy_per_fold"]))
    assert (tmp_path / "m" / "classifier.skops").is_file()
    images = sorted((small_flowers / "sunflowers").glob("*.jpg"))[:3]
    proc = run_cli("predict", str(tmp_path / "m"), *map(str, images), "--json")
    assert proc.returncode == 0, proc.stderr
    predicted = json.loads(proc.stdout)
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-6 for p in predicted)
    assert sum(p["top"][0]["label"] == "sunflowers" for p in predicted) >= 2
    for name in ("svm", "knn", "mlp"):
        assert inceptune.fit_features(str(flowers_features), name, folds=3)["cv_accuracy_mean"] > 0.4, name


def test_similar_finds_the_image_itself_first(flowers_features, small_flowers, tmp_path):
    query = sorted((small_flowers / "roses").glob("*.jpg"))[0]
    proc = run_cli("similar", str(flowers_features), str(query), "--k", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found[0]["path"] == str(query) and found[0]["distance"] == pytest.approx(0, abs=1e-6)
    assert [f["distance"] for f in found] == sorted(f["distance"] for f in found) and len(found) == 4
    # An image not in the file: its vector is computed the way the file's were.
    from PIL import Image

    Image.open(query).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "mirrored.jpg")
    nearest = inceptune.similar(str(flowers_features), str(tmp_path / "mirrored.jpg"), k=1)[0]
    assert nearest["path"] == str(query)


def test_features_mistakes_are_one_sentence_errors(small_flowers, tmp_path):
    for args, message in ((("--out", str(tmp_path / "f.csv")), "--out must end in .parquet or .npz"),
                          (("--out", str(tmp_path / "f.parquet"), "--layer", "mixed11"), "Unknown block"),
                          (("--out", str(tmp_path / "f.parquet"), "--pooling", "sum"), "--pooling must be avg or max")):
        assert message in one_sentence_error(run_cli("features", str(small_flowers), *args))
    assert "does not exist" in one_sentence_error(run_cli("fit-features", str(tmp_path / "none.parquet")))
