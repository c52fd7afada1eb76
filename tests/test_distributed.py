"""`train --distribute multi-worker`: two real worker processes on localhost, each with its own TF_CONFIG
(in the first test, sharing an empty feature store in a bucket of the local S3 endpoint: each computes half).

Dropout is off in these runs: each replica draws its own dropout masks for its half of a batch, so with
dropout the cluster's losses differ from one process's by chance (docs/distributed.md measures how much);
without it they differ only by the order of float sums, and a resumed run must retrace the same losses.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXPORTS, NARROW_WEIGHTS, copy_subset, FLOWERS, requires_shared
from contract import check_run_folder
from inceptune.deploy.loadtest import free_ports

# Two worker processes and a cluster's threads: never beside a Ray cluster (they take turns on one worker; conftest).
pytestmark = [requires_shared, EXPORTS]

SETTINGS = ("--weights", str(NARROW_WEIGHTS), "--image-size", "75",
            "--batch-size", "16", "--dropout", "0", "--search", "none", "--no-refit", "--duplicate-similarity", "1.0",
            "--val-split", "0.25", "--test-split", "0")


@pytest.fixture(scope="module")
def flowers(tmp_path_factory) -> Path:
    return copy_subset(FLOWERS, tmp_path_factory.mktemp("flowers-cluster"), per_class=16)


@pytest.fixture(scope="module")
def single(flowers, tmp_path_factory):
    """The same training in one process, for (epochs, fine-tune epochs): its history (the first also fills the
    session's feature cache for the workers)."""
    import inceptune

    done = {}

    def history(epochs: int, fine_tune_epochs: int) -> list[dict]:
        if (epochs, fine_tune_epochs) not in done:
            out = tmp_path_factory.mktemp("single") / "run"
            inceptune.train(str(flowers), out=str(out), weights=str(NARROW_WEIGHTS), image_size=75, epochs=epochs,
                            fine_tune_epochs=fine_tune_epochs, batch_size=16, dropout=0.0, search="none",
                            refit=False, duplicate_similarity=1.0, val_split=0.25, test_split=0.0)
            done[epochs, fine_tune_epochs] = _history(out)
        return done[epochs, fine_tune_epochs]

    return history


def _history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return [{"phase": r["phase"], "epoch": int(r["epoch"]), "val_loss": float(r["val_loss"])}
                for r in csv.DictReader(f)]


def _start(data: Path, out: Path, *extra: str, env: dict | None = None, epochs: tuple[int, int] = (3, 2)
           ) -> list[subprocess.Popen]:
    """Both workers of a fresh two-worker cluster on localhost: worker 0 (the chief) and worker 1."""
    hosts = [f"localhost:{p}" for p in free_ports(2)]
    workers = []
    for index in range(2):
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "inceptune", "train", str(data), "--out", str(out), *SETTINGS,
             "--epochs", str(epochs[0]), "--fine-tune-epochs", str(epochs[1]),
             "--distribute", "multi-worker", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CONFIG": json.dumps(config), "TF_NUM_INTRAOP_THREADS": "1",
                 **((env or {}).get(index, {}))}))
    return workers


def _finish(worker: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    try:
        out, err = worker.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, err = worker.communicate()
        pytest.fail(f"a worker did not finish in {timeout:.0f} s:\n{err[-3000:]}")
    return worker.returncode, out, err


def _close(history: list[dict], reference: list[dict], within: float) -> None:
    assert [(h["phase"], h["epoch"]) for h in history] == [(h["phase"], h["epoch"]) for h in reference]
    for mine, theirs in zip(history, reference):
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=within), (mine, theirs)


def test_two_workers_train_as_one_process_does(flowers, single, bucket, tmp_path):
    reference = single(2, 1)
    out = tmp_path / "run"
    # an empty feature store in a bucket that both reach, each "machine" with a local mirror of its own
    machines = {i: {"XDG_CACHE_HOME": str(tmp_path / f"machine-{i}")} for i in range(2)}
    chief, other = (_finish(w) for w in _start(flowers, out, "--cache-dir", f"{bucket}/store", env=machines,
                                               epochs=(2, 1)))
    assert chief[0] == 0, chief[2][-3000:]
    assert other[0] == 0, other[2][-3000:]
    for index, (_, stdout, stderr) in enumerate((chief, other)):  # each computed its half, read the other's
        log = " ".join((stdout + stderr).split())
        assert re.search(rf"Features: 80 images, 40 from cache, 40 computed \([\d.]+s\), 40 of them as worker "
                         rf"{index}'s share", log), log[-3000:]
        # and each read only its half of every training batch: 60 rows a batch of 16 at a time, 2 + 1 epochs
        shards = re.findall(rf"Worker {index} read (\d+) of the (\d+) training rows of the (\S+) phase", log)
        assert [(int(a), int(b), phase) for a, b, phase in shards] == [(60, 120, "head"), (30, 60, "fine-tune")], log
    check_run_folder(out)
    history = _history(out)
    _close(history, reference, within=0.02)  # the bound; without dropout they agree far closer
    assert "Worker 0 of 2 (chief" in chief[1] + chief[2]
    assert "the chief writes the run folder" in other[1] + other[2]
    assert not list(tmp_path.glob(".run.worker-*")), "worker 1's checkpoint folder was left behind"
    assert json.loads((out / "config.json").read_text())["run"]["distribute"] == "multi-worker"


@pytest.mark.slow  # three clusters of two processes and TensorFlow's heartbeat timeout: about 80 s
def test_a_killed_worker_stops_the_other_and_resume_continues(flowers, single, tmp_path):
    reference = single(3, 2)  # first: it fills the session's feature cache, which these workers share
    out = tmp_path / "run"
    # worker 1 dies (SIGKILL) at the end of its second epoch of phase 1, its checkpoint written
    chief, other = _start(flowers, out, env={1: {"INCEPTUNE_SIGNAL_AT": "epoch_end:2:KILL"}})
    code, _, err = _finish(other)
    died = time.monotonic()
    assert code == -9, err[-3000:]
    code, _, err = _finish(chief, timeout=60)  # not a hang: TensorFlow's heartbeats find the dead worker
    assert time.monotonic() - died < 60
    assert code == 3, err[-3000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    message = " ".join(err[err.index("error:"):].split())
    assert "worker 1 stopped" in message and "--resume" in message, message
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert (state["phase"], state["epochs_done"]) == ("head", 2)

    chief, other = (_finish(w) for w in _start(flowers, out, "--resume"))
    assert chief[0] == 0, chief[2][-3000:]
    assert other[0] == 0, other[2][-3000:]
    assert "Resuming head after epoch 2 of 3" in chief[1] + chief[2]
    check_run_folder(out)
    history = _history(out)
    _close(history, reference, within=0.02)
    assert not (out / "checkpoint").exists() and not list(tmp_path.glob(".run.worker-*"))
