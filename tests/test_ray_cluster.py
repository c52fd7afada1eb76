"""`features` and `predict --engine ray` on a Ray cluster of two nodes (a head and a second `ray start
--address`, each with its own temp dir, on localhost), photos and feature store given as file:// URLs: the
actors write every vector into the store themselves, the driver none, a following `train` reads them all
from there. Then (test-slow) the same with photos and store in a bucket (a real S3 endpoint on localhost): the
actors read the photos and publish the vectors there; and `predict` on the cluster answers as local `predict`
does."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import fsspec
import numpy as np
import pytest

from conftest import NARROW_WEIGHTS, EXPORTS, copy_subset, FLOWERS, requires_shared, run_cli, upload
from inceptune.deploy.loadtest import free_port

pytest.importorskip("ray", reason="needs Ray: pip install 'inceptune[ray]'")
# Ray processes at 75 px are light, but a conversion to ONNX beside them is not: they take turns (conftest).
pytestmark = [requires_shared, EXPORTS]

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
SIZE = ("--image-size", "75", "--weights", str(NARROW_WEIGHTS))


def _node(*args: str) -> subprocess.Popen:
    """`ray start --block ...` in a process group of its own; returns once it says the runtime started."""
    ray = str(Path(sys.executable).with_name("ray"))
    node = subprocess.Popen([ray, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
                             "--disable-usage-stats", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **RAY_ENV}, start_new_session=True)
    seen = []
    for line in node.stdout:  # the line Ray prints once the node has joined: a known point, not a wait
        seen.append(line)
        if "Ray runtime started" in line:
            return node
    pytest.fail("ray start failed:\n" + "".join(seen[-30:]))


@pytest.fixture
def cluster(s3_endpoint):  # every node, and so every actor, reaches the S3 endpoint (AWS_* in the environment)
    port = free_port()
    temp = [tempfile.mkdtemp(prefix="rh", dir="/tmp"), tempfile.mkdtemp(prefix="rw", dir="/tmp")]  # short: sockets
    nodes = [_node("--head", "--port", str(port), "--temp-dir", temp[0], "--include-dashboard", "false")]
    try:
        nodes.append(_node("--address", f"127.0.0.1:{port}", "--temp-dir", temp[1]))
        yield f"127.0.0.1:{port}"
    finally:
        for node in reversed(nodes):  # every Ray process of a node is in its group; a graceful stop takes 35 s
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        for folder in temp:
            shutil.rmtree(folder, ignore_errors=True)


def _cli(*args: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, int]:
    proc = subprocess.Popen([sys.executable, "-m", "inceptune", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **RAY_ENV})
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def _written_by_actors(proc: subprocess.CompletedProcess) -> None:
    """The run succeeded and its log says 40 vectors were written by 2 actors on 2 nodes, none by the driver."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = " ".join(proc.stderr.split())
    found = re.search(r"Ray: (\d+) vectors written into the feature store \S+ by (\d+) actor\(s\) on (\d+) "
                      r"node\(s\); the driver wrote none", log)
    assert found and found.groups() == ("40", "2", "2"), log[-2000:]


def test_two_node_ray_actors_write_the_store_and_train_reads_it(cluster, tmp_path):
    from inceptune.features.files import read_features_file

    import inceptune

    photos = copy_subset(FLOWERS, tmp_path / "photos", per_class=8)
    store = tmp_path / "store"  # neither node's default cache, nor the session's
    out = tmp_path / "mixed10.parquet"
    proc, driver = _cli("features", photos.as_uri(), "--out", str(out), "--layer", "mixed10", "--engine", "ray",
                        "--ray-address", cluster, "--cache-dir", store.as_uri(), "--batch-size", "4", *SIZE)
    _written_by_actors(proc)
    shards = list(store.glob("*/shards/*/*.bin"))
    pids = {int(s.name.split("-")[0]) for s in shards}
    assert driver not in pids and len(pids) >= 2, (driver, shards)  # written by the actors, not the driver
    vectors = read_features_file(out)
    assert len(vectors.hashes) == 40
    # mixed5's average too (what `train` groups near-duplicates by), from this process: the store is a store
    inceptune.extract_features_file(photos.as_uri(), str(tmp_path / "mixed5.parquet"), layer="mixed5",
                                    image_size=75, weights=str(NARROW_WEIGHTS), batch_size=4,
                                    cache_dir=store.as_uri())

    # the local engine on the same photos, into a cache of its own: the same vectors
    local = tmp_path / "local.parquet"
    inceptune.extract_features_file(str(photos), str(local), layer="mixed10", image_size=75,
                                    weights=str(NARROW_WEIGHTS), batch_size=4, cache_dir=str(tmp_path / "own"))
    mine, theirs = vectors, read_features_file(local)
    row = {h: i for i, h in enumerate(theirs.hashes)}
    assert np.abs(mine.vectors - theirs.vectors[[row[h] for h in mine.hashes]]).max() <= 1e-6

    # a `train` elsewhere (this process's own cache is not the store) reads every vector from the store
    written = sorted(store.rglob("*.bin"))
    proc = run_cli("train", photos.as_uri(), "--out", str(tmp_path / "run"), "--cache-dir", store.as_uri(),
                   "--search", "none", "--fine-tune-epochs", "0", "--no-refit", "--epochs", "2", *SIZE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Features: 40 images, 40 from cache, 0 computed" in " ".join(proc.stderr.split())
    assert sorted(store.rglob("*.bin")) == written  # train wrote nothing into the store


@pytest.mark.slow  # two more Ray jobs on the cluster (about 50 s); the fast tier has the file:// store above
def test_two_node_ray_actors_read_photos_and_publish_vectors_in_a_bucket(cluster, bucket, tmp_path):
    from inceptune.features.files import read_features_file

    import inceptune

    photos = copy_subset(FLOWERS, tmp_path / "photos", per_class=8)
    local = tmp_path / "local.parquet"
    inceptune.extract_features_file(str(photos), str(local), layer="mixed10", image_size=75,
                                    weights=str(NARROW_WEIGHTS), batch_size=4, cache_dir=str(tmp_path / "own"))
    theirs = read_features_file(local)
    row = {h: i for i, h in enumerate(theirs.hashes)}
    # photos and store in a bucket: each actor reads its photos and publishes its vectors there itself
    in_bucket, bucket_store = upload(photos, f"{bucket}/photos"), f"{bucket}/store"
    proc, driver = _cli("features", in_bucket, "--out", str(tmp_path / "s3.parquet"), "--engine", "ray",
                        "--ray-address", cluster, "--cache-dir", bucket_store, "--batch-size", "4", *SIZE)
    _written_by_actors(proc)
    fs, base = fsspec.core.url_to_fs(bucket_store)
    pids = {int(Path(p).name.split("-")[0]) for p in fs.find(base) if "/shards/" in p}
    assert driver not in pids and len(pids) >= 2, pids
    mine = read_features_file(tmp_path / "s3.parquet")
    assert all(p.startswith(f"{in_bucket}/") for p in mine.paths)
    assert np.abs(mine.vectors - theirs.vectors[[row[h] for h in mine.hashes]]).max() <= 1e-6

    # and `predict --engine ray` on the same two nodes answers as local `predict` does
    run = tmp_path / "run"
    proc = run_cli("train", str(photos), "--out", str(run), "--cache-dir", str(tmp_path / "own"), "--search", "none",
                   "--fine-tune-epochs", "0", "--no-refit", "--epochs", "2", *SIZE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    images = [str(p) for p in sorted(photos.rglob("*.jpg"))[::5]]
    proc, _ = _cli("predict", str(run), *images, "--engine", "ray", "--ray-address", cluster, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    on_ray, local = json.loads(proc.stdout), inceptune.predict(str(run), images)
    assert [r["path"] for r in on_ray] == images
    for a, b in zip(on_ray, local):
        assert a["top"][0]["label"] == b["top"][0]["label"]
        assert max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in a["probabilities"]) <= 1e-5

