"""Photos and the feature store in an object store (s3:// on a real S3 endpoint on localhost, moto's server):
the store publishes whole objects that other readers merge, a bucket of photos scans as its local copy does,
`features` and `train` run from the bucket and read what another machine computed, and a missing package,
bucket or credentials is one sentence."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pytest

from conftest import (NARROW_WEIGHTS, FLOWERS, copy_subset, make_color_dataset, one_sentence_error,
                      requires_shared, run_cli, upload)
from inceptune.data.scan import scan_dataset
from inceptune.errors import UserError
from inceptune.features import object_store as object_store_module
from inceptune.features.cache import FeatureCache
from inceptune.hooks import SIGNAL_ENV
from inceptune.storage import filesystem

SPACE = {"backbone": "test", "image_size": 75}
SIZE = ("--image-size", "75", "--weights", str(NARROW_WEIGHTS))


def _objects(url: str) -> list[str]:
    fs, base = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    return sorted(p[len(base):].lstrip("/") for p in fs.find(base))


def _machine(monkeypatch, tmp_path: Path, name: str) -> None:
    """Another machine: a user cache (and so a mirror of the store) of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / name))


def test_the_store_publishes_whole_objects_and_other_readers_merge_them(bucket, tmp_path, monkeypatch):
    store = f"{bucket}/store"
    _machine(monkeypatch, tmp_path, "writer")
    writer = FeatureCache(store, SPACE)
    writer.put("avg-pool", "a" * 64, np.arange(4, dtype=np.float32))
    assert writer.has("avg-pool", "a" * 64) and list(writer.get("avg-pool", "a" * 64)) == [0, 1, 2, 3]

    _machine(monkeypatch, tmp_path, "reader")
    reader = FeatureCache(store, SPACE)
    assert reader.dir != writer.dir and reader.dir.is_relative_to(tmp_path / "reader")
    assert reader.missing(["avg-pool"], ["a" * 64]) == ["a" * 64]  # held in the writer's memory: not published
    writer.flush()
    key = writer.dir.name
    shards = [o for o in _objects(store) if o.startswith(f"{key}/shards/")]
    parts = [o for o in _objects(store) if o.startswith(f"{key}/index/")]
    assert len(shards) == 1 and len(parts) == 1 and f"{key}/space.json" in _objects(store)
    assert json.loads(fsspec.open(f"{store}/{key}/space.json").open().read()) == SPACE
    assert reader.missing(["avg-pool"], ["a" * 64]) == []
    assert list(reader.get("avg-pool", "a" * 64)) == [0, 1, 2, 3]
    assert (reader.dir / "shards" / shards[0].split("/shards/")[1]).is_file()  # read once into the mirror

    # a writer killed between its shard and its index part: bytes that nothing points to, never a bad row
    fsspec.filesystem("s3").pipe_file(f"{store[5:]}/{key}/shards/avg-pool/dead-0001.bin", b"\0" * 8)
    assert reader.entries() == [("avg-pool", "a" * 64)]

    # entries held longer than FLUSH_SECONDS are published by the next put
    monkeypatch.setattr(object_store_module, "FLUSH_SECONDS", 0.0)
    writer.put("avg-pool", "b" * 64, np.ones(4, np.float32))
    assert list(reader.get("avg-pool", "b" * 64)) == [1, 1, 1, 1]  # a miss looks for new parts

    # a damaged shard object: a new machine's checksum catches it, and the entry is computed again
    fs = fsspec.filesystem("s3")
    fs.pipe_file(f"{store[5:]}/{shards[0]}", b"\xff" * 8)
    _machine(monkeypatch, tmp_path, "third")
    assert FeatureCache(store, SPACE).get("avg-pool", "a" * 64) is None


def test_a_bucket_of_photos_scans_as_its_local_copy_does(bucket, tmp_path):
    local = make_color_dataset(tmp_path / "photos", per_class=3)
    (local / "red" / "nested").mkdir()
    shutil.copy(next((local / "red").glob("*.jpg")), local / "red" / "nested" / "again.jpg")
    (local / "blue" / "notes.txt").write_text("not a photo")
    (local / "blue" / ".hidden.png").write_bytes(b"x")
    (local / "blue" / "broken.jpg").write_bytes(b"not a jpeg")
    (local / ".git").mkdir()
    (local / ".git" / "config").write_text("x")
    remote = upload(local, f"{bucket}/photos")

    here, there = scan_dataset(local), scan_dataset(remote)
    assert there.root == remote and there.layout == here.layout == "classes"

    def relative(path: str, root: str) -> str:
        return path[len(root):].lstrip("/")

    assert [(relative(r.path, remote), r.label, r.sha256) for r in there.records] == \
        [(relative(r.path, str(local)), r.label, r.sha256) for r in here.records]
    assert all(r.path.startswith(f"{remote}/") for r in there.records)
    assert sorted((relative(s.path, remote), s.reason) for s in there.skipped) == \
        sorted((relative(s.path, str(local)), s.reason) for s in here.skipped)
    assert len(there.records) == 7 and len(there.skipped) == 3

    with pytest.raises(UserError, match="does not exist"):
        scan_dataset(f"{bucket}/nothing-here")


def test_a_missing_package_bucket_or_credentials_is_one_sentence(s3_endpoint, tmp_path):
    if importlib.util.find_spec("gcsfs") is None:
        with pytest.raises(UserError, match=r"gs:// locations need gcsfs: pip install gcsfs"):
            filesystem("gs://bucket/photos")
    proc = run_cli("features", "s3://no-such-bucket-here/photos", "--out", str(tmp_path / "f.parquet"),
                   "--weights", "none", "--image-size", "75")
    assert "does not exist" in one_sentence_error(proc)
    photos = make_color_dataset(tmp_path / "photos", per_class=2)
    proc = run_cli("features", str(photos), "--out", str(tmp_path / "f.parquet"), "--weights", "none",
                   "--image-size", "75", "--cache-dir", "s3://no-such-bucket-here/store")
    message = one_sentence_error(proc)
    assert "error: s3://no-such-bucket-here/store/" in message and "credentials for s3://" in message
    proc = run_cli("audit", "s3://no-such-bucket-here/photos", "--weights", "none")
    assert "audit (CleanVision opens each photo as a file) reads local paths" in one_sentence_error(proc)


@requires_shared
def test_features_and_train_run_from_a_bucket_and_read_what_another_machine_computed(bucket, tmp_path):
    import inceptune
    from inceptune.features.files import read_features_file

    local = copy_subset(FLOWERS, tmp_path / "photos", per_class=8)
    photos, store = upload(local, f"{bucket}/photos"), f"{bucket}/store"
    first = {"XDG_CACHE_HOME": str(tmp_path / "first")}
    for layer in ("mixed10", "mixed5"):  # what a `train --search none` without fine-tuning reads
        out = tmp_path / f"{layer}.parquet"
        proc = run_cli("features", photos, "--out", str(out), "--layer", layer, "--cache-dir", store, *SIZE, env=first)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Features: 40 images, 0 from cache, 40 computed." in " ".join(proc.stderr.split())
    table = read_features_file(tmp_path / "mixed10.parquet")
    assert all(p.startswith(f"{photos}/") for p in table.paths)

    # the same photos on disk, the local engine, a cache of its own: the same vectors
    own = tmp_path / "own.parquet"
    inceptune.extract_features_file(str(local), str(own), image_size=75, weights=str(NARROW_WEIGHTS),
                                    cache_dir=str(tmp_path / "own"))
    theirs = read_features_file(own)
    row = {h: i for i, h in enumerate(theirs.hashes)}
    assert np.abs(table.vectors - theirs.vectors[[row[h] for h in table.hashes]]).max() <= 1e-6

    # another machine (an empty mirror) trains from the bucket, reads every vector there and writes none
    before = _objects(store)
    second = {"XDG_CACHE_HOME": str(tmp_path / "second")}
    proc = run_cli("train", photos, "--out", str(tmp_path / "run"), "--cache-dir", store, "--search", "none",
                   "--fine-tune-epochs", "0", "--no-refit", "--epochs", "2", *SIZE, env=second)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Features: 40 images, 40 from cache, 0 computed" in " ".join(proc.stderr.split())
    assert _objects(store) == before
    manifest = (tmp_path / "run" / "manifest.csv").read_text()
    assert f"{photos}/" in manifest

    # predict reads photos from the bucket as from the disk
    on_disk = sorted(str(p) for p in (local / "roses").glob("*.jpg"))
    remote, here = inceptune.predict(str(tmp_path / "run"), [f"{photos}/roses"]), inceptune.predict(
        str(tmp_path / "run"), on_disk)
    assert [r["path"] for r in remote] == [p.replace(str(local), photos) for p in on_disk]
    assert [r["top"] for r in remote] == [r["top"] for r in here]


def test_ctrl_c_in_an_extraction_into_a_bucket_publishes_what_was_computed(bucket, tmp_path):
    photos = upload(make_color_dataset(tmp_path / "photos", per_class=10), f"{bucket}/photos")
    args = [sys.executable, "-m", "inceptune", "features", photos, "--out", str(tmp_path / "f.parquet"),
            "--cache-dir", f"{bucket}/store", "--weights", str(NARROW_WEIGHTS), "--image-size", "75", "--batch-size", "4"]
    stopped = subprocess.run(args, env={**os.environ, SIGNAL_ENV: "feature_cached:10:INT"}, capture_output=True,
                             text=True, timeout=300)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert not (tmp_path / "f.parquet").exists()
    again = run_cli("features", *args[4:])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "20 images, 10 from cache, 10 computed" in again.stderr


def test_any_fsspec_protocol_holds_the_store_and_the_photos(tmp_path, monkeypatch):
    """Nothing is S3's own: fsspec's in-memory filesystem (another protocol, no package) works the same way."""
    _machine(monkeypatch, tmp_path, "one")
    store = f"memory://inceptune-{tmp_path.name}/store"
    writer = FeatureCache(store, SPACE)
    writer.put("max-pool", "c" * 64, np.full(3, 0.5, np.float32))
    writer.close()  # publishes
    _machine(monkeypatch, tmp_path, "two")
    assert list(FeatureCache(store, SPACE).get("max-pool", "c" * 64)) == [0.5, 0.5, 0.5]
    photos = upload(make_color_dataset(tmp_path / "photos", per_class=2), f"memory://inceptune-{tmp_path.name}/p")
    scan = scan_dataset(photos)
    assert [r.label for r in scan.records] == ["blue", "blue", "red", "red"]
    assert all(r.path.startswith("memory://") for r in scan.records)
