"""A run stopped at known points: Ctrl-C and SIGTERM exit 130 with one line, SIGKILL corrupts nothing,
and everything finished is kept for the rerun.

The run sends the signal to itself at an exact point (inceptune/hooks.py,
INCEPTUNE_SIGNAL_AT): no test waits for files to appear or races a process.
Every stopped run is a process of its own, started as a user starts the
command: a signal sent inside the test runner's worker would reach that worker
whenever the command's own handlers were not in place (a Ray driver's, or the
default, which ends the process). One run starts with SIGINT ignored, as a
shell's background job or a test runner may start it: Ctrl-C in phase 2 on
images, where Keras' worker threads must not keep the process alive. Reruns,
which send no signal, run in this process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NARROW_WEIGHTS, cached_entries, make_color_dataset, one_sentence_error, run_cli
from inceptune.features.cache_admin import space_info
from inceptune.hooks import SIGNAL_ENV

ARGS = ["--search", "none", "--no-refit", "--weights", str(NARROW_WEIGHTS), "--image-size", "75", "--batch-size", "4",
        "--epochs", "2", "--fine-tune-epochs", "2",
        "--test-split", "0", "--no-tensorboard"]
ONLINE = ["--augment", "light", "--aug-views", "1"]  # phase 2 on images decoded by Keras' worker threads
# Where the signal lands: a hooks event and its count (the 2 head epochs come before the fine-tune epochs),
# extra arguments, and whether the run starts with SIGINT ignored.
POINTS = {
    "Ctrl-C in extraction": ("feature_cached:5:INT", [], False),
    "SIGTERM in a head epoch": ("epoch_end:1:TERM", [], False),
    "Ctrl-C in a fine-tune epoch": ("epoch_end:3:INT", [], False),
    "Ctrl-C writing the run folder": ("run_file_written:3:INT", [], False),
    "Ctrl-C in a fine-tune epoch on images, SIGINT ignored by the parent": ("epoch_end:3:INT", ONLINE, True),
    "SIGKILL in extraction": ("feature_cached:5:KILL", [], False),
    "SIGKILL writing the run folder": ("run_file_written:1:KILL", [], False),
}
RERUN = ("Ctrl-C in extraction", "SIGKILL in extraction", "SIGKILL writing the run folder")
# The fast tier stops a run once with each signal, in extraction, an epoch and the run folder; these points
# repeat a signal at another place and run in the slow tier (`./run test-slow`).
SLOW_POINTS = ("Ctrl-C in a fine-tune epoch", "Ctrl-C writing the run folder", "SIGKILL in extraction")


@pytest.fixture(scope="module")
def colors(tmp_path_factory):
    return make_color_dataset(tmp_path_factory.mktemp("interrupts") / "data", per_class=10)


def _stopped_run(args: list[str], env: dict, sigint_ignored: bool) -> subprocess.CompletedProcess:
    """`inceptune ARGS` in a process of its own; with SIGINT ignored, as `trap '' INT` leaves it (kept across exec:
    no Python code runs between fork and exec in this multi-threaded test process)."""
    command = [sys.executable, "-m", "inceptune", *args]
    if sigint_ignored:
        command = ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *command]
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def _nothing_corrupt(run: Path, cache: Path) -> None:
    import keras

    entries = cached_entries(cache)  # every indexed entry reads back whole (length and checksum)
    assert all(value is not None and value.size > 0 for value in entries.values())
    assert len({sha for _, sha in entries}) >= 5
    for space in cache.glob("*/space.json"):
        assert space_info(space.parent)["unreferenced_bytes"] == 0  # nothing written twice, no torn entry
    assert not list(cache.rglob(".*tmp*")) and not list(run.glob(".*tmp*"))
    for path in run.glob("*.json"):
        json.loads(path.read_text())
    if (run / "model.keras").exists():
        keras.saving.load_model(run / "model.keras", compile=False)


@pytest.mark.parametrize("point", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_POINTS else p for p in POINTS])
def test_a_run_stopped_at_any_point_keeps_finished_work_and_a_rerun_finishes(colors, tmp_path, point):
    at, extra, sigint_ignored = POINTS[point]
    run, cache = tmp_path / "run", tmp_path / "cache"
    args = ["train", str(colors), "--out", str(run), *ARGS, *extra]
    proc = _stopped_run(args, {"INCEPTUNE_CACHE": str(cache), SIGNAL_ENV: at}, sigint_ignored)
    if at.endswith("KILL"):
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    else:
        assert proc.returncode == 130, proc.stderr[-3000:]
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("interrupted: finished work is kept") and "Traceback" not in proc.stderr
    assert not (run / "metrics.json").exists()  # the run is unfinished, and says so
    _nothing_corrupt(run, cache)
    if "writing" in point:  # nothing predicts from a half-written run
        assert "is not a finished inceptune run (" in one_sentence_error(run_cli("predict", str(run), str(colors)))
    if "fine-tune epoch" in point:  # phase 1 and the first fine-tune epoch are checkpointed
        state = json.loads((run / "checkpoint" / "state.json").read_text())
        assert state["phase"] == "fine-tune" and state["epochs_done"] == 1 and len(state["earlier_rows"]) == 2
    if point in RERUN:  # the rerun finishes, computing only what is missing
        again = run_cli(*args, env={"INCEPTUNE_CACHE": str(cache)})
        assert again.returncode == 0, again.stderr
        _nothing_corrupt(run, cache)
        features = json.loads((run / "metrics.json").read_text())["phase1"]["features"]
        expected = 5 if "extraction" in point else 20
        assert features["from_cache"] == expected and features["computed"] == 20 - expected
        assert f"Features: 20 images, {expected} from cache, {20 - expected} computed" in " ".join(again.stderr.split())


# Gradual unfreezing with per-block rates on images augmented on the fly: the resumed stage, weights,
# optimizer state, batch order and augmentation draws must all come back.
GRADUAL_ONLINE = ["--augment", "light", "--aug-views", "1", "--unfreeze-top", "2", "--unfreeze-every", "1",
                  "--block-lr-decay", "0.5", "--train-batchnorm"]


@pytest.mark.parametrize("extra", [pytest.param([], id="cached"),  # the online one: three runs, about 80 s
                                   pytest.param(GRADUAL_ONLINE, id="gradual-online", marks=pytest.mark.slow)])
def test_a_run_killed_in_phase_2_resumes_from_its_last_finished_epoch(tmp_path, extra):
    data = make_color_dataset(tmp_path / "data", per_class=12)  # the narrow network: resuming is about state, not skill
    args = ["train", str(data), "--search", "none", "--no-refit", "--weights", str(NARROW_WEIGHTS), "--image-size", "75",
            "--epochs", "2", "--fine-tune-epochs", "3",
            "--patience", "10", "--batch-size", "4", "--test-split", "0", "--no-tensorboard",
            "--duplicate-similarity", "1", *extra]
    whole = run_cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    if extra:  # phase 2 trained on the images themselves, augmented afresh, with the schedule asked for
        phase2 = json.loads((tmp_path / "whole" / "metrics.json").read_text())["phase2"]
        assert phase2["augment"] == "online" and phase2["inputs"] == "images"
        assert phase2["examples_per_epoch"] == 20  # the training images themselves, not their cached views
        config = json.loads((tmp_path / "whole" / "config.json").read_text())
        assert config["recipe"]["block_lr_decay"] == 0.5 and config["recipe"]["train_batchnorm"] is True

    killed = tmp_path / "killed"
    state_file = killed / "checkpoint" / "state.json"
    # SIGKILL at the end of the 4th epoch: phase 1's 2, then fine-tune epoch 2, checkpointed just before.
    process = _stopped_run([*args, "--out", str(killed)], {SIGNAL_ENV: "epoch_end:4:KILL"}, sigint_ignored=False)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    done = json.loads(state_file.read_text())["epochs_done"]
    assert done == 2 and not (killed / "metrics.json").exists()

    resumed = run_cli(*args, "--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    log = " ".join(resumed.stderr.split())
    assert "phase 1 finished (2 epochs), not redone" in log
    assert f"Resuming fine-tune after epoch {done} of 3" in log
    with open(killed / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows if r["phase"] == "head"] == [1, 2]
    assert [int(r["epoch"]) for r in rows if r["phase"] == "fine-tune"] == [1, 2, 3]
    assert not (killed / "checkpoint").exists()
    accuracy = [json.loads((run / "metrics.json").read_text())["val"]["accuracy"] for run in (tmp_path / "whole", killed)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.01, accuracy
    # Weights, optimizer, batch order and random draws all come back: every epoch matches the whole run's.
    with open(tmp_path / "whole" / "history.csv") as f:
        whole_rows = list(csv.DictReader(f))
    assert [float(r["val_loss"]) for r in rows] == pytest.approx([float(r["val_loss"]) for r in whole_rows],
                                                                 rel=1e-5)
    if extra:  # the resumed epochs trained the blocks their stage says
        assert [r["unfrozen_from"] for r in rows if r["phase"] == "fine-tune"] == ["mixed10", "mixed9", "mixed9"]
