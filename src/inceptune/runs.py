"""The run folder: everything a training run leaves behind, written once and read back.

    model.keras    raw RGB pixels in, class probabilities out (plain Keras loads it)
    labels.json    class names in output order, the task, the calibration (a temperature already in the
                   model, multi-label thresholds) and the OOD threshold
    config.json    every setting by group (data, recipe, scratch, run), which `train --config`
                   replays; `resolved`: facts of this run (the model's image size, the weights
                   file and its fingerprint, the kind of data); `versions` of the libraries
    history.csv    per-epoch metrics of every phase
    manifest.csv   path, label, split, content hash and group (names, near-duplicates) of every image
    dataset.json   counts per class and split, skipped files, leakage
    evaluation.json, predictions.csv, report.html and plots   the held-out split, when there is one
    metrics.json   validation and test accuracy and loss, timings, cache use

Both trainers write it with `RunFolder.write_finished`, in that order, each
file atomically; metrics.json comes last, so a run folder without it is an
unfinished run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inceptune import hooks
from inceptune.atomic import atomic_path, atomic_write_json, atomic_write_text
from inceptune.errors import UserError
from inceptune.vocabulary.version import __version__

RUN_FILES = ("model.keras", "labels.json", "config.json", "history.csv", "manifest.csv", "dataset.json",
             "metrics.json")
TASKS = ("binary", "multiclass", "multilabel")


@dataclass
class RunContents:
    """What every trainer hands to `RunFolder.write_finished`."""

    model: object  # keras.Model: raw RGB pixels of any size -> class probabilities
    classes: list[str]
    task: str  # one of TASKS
    settings: dict  # Settings.as_dict(): the groups `train --config` replays
    resolved: dict  # facts of this run: image_size (the model's input), weights, data_kind, ...
    history: list[dict]
    manifest: list[dict]  # path, label, split, sha256 (and group) per image
    dataset: dict  # Dataset.summary()
    calibration: dict | None = None  # the temperature folded into the model, and multi-label thresholds
    ood: dict | None = None  # the OOD score's threshold (training/ood.py), when the model answers one
    sets: dict | None = None  # prediction sets (training/calibrate.py): the held-out scores their thresholds come from


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # --- paths
    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    def file(self, name: str) -> Path:
        return self.path / name

    # --- creating
    @classmethod
    def create(cls, path: str | os.PathLike, overwrite: bool = False) -> "RunFolder":
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise UserError(f"--out {path} is a file; give a folder for the run.")
        # Only metrics.json marks a finished run: a run killed while writing is simply redone.
        if run.file("metrics.json").exists() and not overwrite:
            raise UserError(f"{path} already holds a finished run; pass a new --out or --overwrite.")
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            probe = run.path / ".write-test"
            probe.write_text("")
            probe.unlink()
            # Overwriting: the folder is unfinished from now on, so an interrupted run never looks finished
            # with the new model beside the old run's files.
            run.file("metrics.json").unlink(missing_ok=True)
        except OSError as exc:
            raise UserError(f"Cannot write to the run folder {path} ({exc.strerror or exc}).") from None
        return run

    def save_model(self, model) -> None:
        with atomic_path(self.model_path) as tmp:
            model.save(tmp)
        hooks.reached("run_file_written", name="model.keras")

    def write_json(self, name: str, data) -> None:
        atomic_write_json(self.file(name), data)
        hooks.reached("run_file_written", name=name)

    def write_finished(self, contents: RunContents, metrics: dict, report: Callable[[], dict | None]) -> None:
        """The run-folder contract, in order: model, labels, config, history, manifest, dataset, then what
        `report()` writes (its returned dict joins metrics), then metrics.json, which marks the run finished."""
        assert contents.task in TASKS, contents.task
        self.save_model(contents.model)
        self.write_json("labels.json", {"classes": contents.classes, "task": contents.task,
                                         **labels_calibration(contents.calibration),
                                         **({"ood": {k: contents.ood[k] for k in ("score", "threshold", "keep")}}
                                            if contents.ood else {}),
                                         **({"sets": contents.sets} if contents.sets else {})})
        self.write_json("config.json", {**contents.settings, "resolved": contents.resolved, "versions": versions()})
        self.write_rows("history.csv", contents.history)
        self.write_rows("manifest.csv", contents.manifest, columns=["path", "label", "split", "sha256", "group"])
        self.write_json("dataset.json", contents.dataset)
        metrics.update(report() or {})
        self.write_json("metrics.json", metrics)

    def write_rows(self, name: str, rows: list[dict], columns: list[str] | None = None) -> None:
        columns = list(columns or [])
        for row in rows:
            columns += [k for k in row if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.file(name), buffer.getvalue())
        hooks.reached("run_file_written", name=name)

    # --- reading
    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        run = cls(path)
        if not run.path.is_dir():
            raise UserError(f"The run folder {path} does not exist.")
        for name in ("model.keras", "labels.json", "config.json", "metrics.json"):
            if not run.file(name).is_file():
                raise UserError(f"{path} is not a finished inceptune run ({name} is missing).")
        read = {name: run.read_json(name) for name in ("labels.json", "config.json", "metrics.json")}
        for name, content in read.items():
            if not isinstance(content, dict):
                raise UserError(f"{run.file(name)} is not what inceptune writes (a JSON object); the run folder "
                                "was changed by hand or damaged.")
        classes = read["labels.json"].get("classes")
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)
                and len(set(classes)) == len(classes)):
            raise UserError(f"{run.file('labels.json')} does not name two or more distinct classes; the run folder "
                            "was changed by hand or damaged.")
        return run

    def read_json(self, name: str):
        try:
            return json.loads(self.file(name).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.file(name)} is not valid JSON ({exc}); the run folder was changed by hand or "
                            "damaged.") from None

    @property
    def classes(self) -> list[str]:
        return self.read_json("labels.json")["classes"]

    @property
    def temperature(self) -> float | None:
        """The temperature folded into the model's output layer by calibration, if any (labels.json)."""
        calibration = self.read_json("labels.json").get("calibration") or {}
        return calibration.get("temperature")

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label run's decision threshold per label, in class order (0.5 where labels.json has none);
        None for a single-label run."""
        from inceptune.vocabulary.limits import THRESHOLD as MULTILABEL_THRESHOLD

        labels = self.read_json("labels.json")
        if labels.get("task") != "multilabel":
            return None
        chosen = labels.get("thresholds") or {}
        return [float(chosen.get(c, MULTILABEL_THRESHOLD)) for c in labels["classes"]]

    @property
    def ood_threshold(self) -> float | None:
        """The OOD score above which an image is "none of these" (labels.json); None: the model has no score."""
        ood = self.read_json("labels.json").get("ood") or {}
        return ood.get("threshold")

    @property
    def sets(self) -> dict | None:
        """The prediction sets' record (labels.json; evaluation/conformal.py); None: the run answers no sets."""
        return self.read_json("labels.json").get("sets")

    @property
    def config(self) -> dict:
        return self.read_json("config.json")

    @property
    def task(self) -> str:
        return self.read_json("labels.json").get("task", "multiclass")

    @property
    def resolved(self) -> dict:
        """Facts of the run: image_size, weights, data_kind, ... (config.json of inceptune before 0.2 was flat)."""
        config = self.config
        return config.get("resolved", config)

    @property
    def image_size(self) -> int:
        """The square the model resizes its inputs to."""
        return int(self.resolved["image_size"])

    def load_model(self, unsafe: bool = False):
        """Load model.keras in Keras' safe mode: a model that carries code (a Lambda layer) is refused
        unless `unsafe` (the user trusts its source)."""
        return load_keras_model(self.model_path, unsafe)


def labels_calibration(calibration: dict | None) -> dict:
    """What labels.json says of calibration: the temperature (already in the model: a record, for reports) and
    the per-label thresholds that `predict`, `evaluate` and `serve` decide multi-label answers at."""
    if not calibration or calibration.get("temperature") is None:
        return {}
    out = {"calibration": {k: calibration[k] for k in ("method", "temperature", "fitted_on")}}
    if calibration.get("thresholds"):
        out["thresholds"] = calibration["thresholds"]
    return out


def versions() -> dict:
    """The versions of what made a run, for config.json."""
    import keras
    import numpy as np
    import PIL
    import sklearn
    import tensorflow as tf

    return {"inceptune": __version__, "python": platform.python_version(), "keras": keras.__version__,
            "tensorflow": tf.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "scikit-learn": sklearn.__version__}


def load_keras_model(path: Path, unsafe: bool = False):
    """A `.keras` file in Keras' safe mode; code inside is refused with an explanation unless `unsafe`."""
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise UserError(f"{path} could not be read as a Keras model ({str(exc).splitlines()[0]}).") from None
        raise UserError(
            f"{path} contains Python code (a Lambda layer or similar) that could run anything, so inceptune "
            "refuses to load it; pass --unsafe only if you trust its source."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} could not be read as a Keras model ({exc}).") from None
    hooks.reached("model_loaded", path=str(path))
    return model
