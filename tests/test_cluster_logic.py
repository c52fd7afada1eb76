"""`--distribute multi-worker` without a cluster: what is refused, in one sentence, before any image is read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inceptune.errors import UserError
from inceptune.engines.cluster import cluster_spec


def test_tf_config_gives_the_worker_its_index_and_the_chief(monkeypatch):
    hosts = ["a:1", "b:1", "c:1"]
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": 2}}))
    assert cluster_spec() == (2, 3, False)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:0"], "worker": hosts},
                                                "task": {"type": "chief", "index": 0}}))
    assert cluster_spec() == (0, 4, True)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:0"], "worker": hosts},
                                                "task": {"type": "worker", "index": 0}}))
    assert cluster_spec() == (1, 4, False)  # with a chief, worker 0 is not the chief


@pytest.mark.parametrize("config, says", [
    (None, "needs TF_CONFIG"),
    ("not json", "is not a cluster"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}), "is not a cluster"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}), "is not a cluster"),
])
def test_a_missing_or_broken_tf_config_is_one_sentence(monkeypatch, config, says):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(UserError, match=says):
        cluster_spec()


def test_cv_and_networks_from_scratch_are_refused_on_a_cluster(tmp_path):
    import inceptune

    with pytest.raises(UserError, match="cv runs in one process"):
        inceptune.cross_validate(str(tmp_path), distribute="multi-worker")
    with pytest.raises(UserError, match="trains in one process"):
        inceptune.train(str(tmp_path), arch="mini-inception", weights="none", distribute="multi-worker")


def test_class_weights_become_each_rows_sample_weight_as_keras_makes_them():
    from inceptune.engines.cluster import _sample_weights

    weights = {0: 2.0, 1: 0.5}
    assert _sample_weights(np.array([0, 1, 1, 0]), weights).tolist() == [2.0, 0.5, 0.5, 2.0]
    assert _sample_weights(np.array([[0.0, 1.0], [1.0, 0.0]]), weights).tolist() == [0.5, 2.0]  # one-hot rows
    assert _sample_weights(np.array([[1.0], [0.0]]), weights).tolist() == [0.5, 2.0]  # a binary label column
