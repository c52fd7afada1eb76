"""The run folder: everything a training run leaves behind, written once and read back.

    model.keras    raw RGB pixels in, class probabilities out (plain Keras loads it)
    labels.json    class names in output order, and the task
    config.json    every resolved setting, with library versions
    history.csv    per-epoch metrics of both phases
    metrics.json   validation and test accuracy and loss, timings, cache use
    manifest.csv   path, label, split and content hash of every image
    dataset.json   counts per class and split, skipped files, leakage

Each file is written atomically; metrics.json is written last, so a run
folder without it is an unfinished run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

from inceptune.atomic import atomic_path, atomic_write_json, atomic_write_text
from inceptune.errors import UserError


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
        except OSError as exc:
            raise UserError(f"Cannot write to the run folder {path} ({exc.strerror or exc}).") from None
        return run

    def save_model(self, model) -> None:
        with atomic_path(self.model_path) as tmp:
            model.save(tmp)

    def write_json(self, name: str, data) -> None:
        atomic_write_json(self.file(name), data)

    def write_rows(self, name: str, rows: list[dict]) -> None:
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.file(name), buffer.getvalue())

    # --- reading
    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        run = cls(path)
        if not run.path.is_dir():
            raise UserError(f"The run folder {path} does not exist.")
        for name in ("model.keras", "labels.json", "config.json"):
            if not run.file(name).is_file():
                raise UserError(f"{path} is not a finished inceptune run ({name} is missing).")
        return run

    def read_json(self, name: str):
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    @property
    def classes(self) -> list[str]:
        return self.read_json("labels.json")["classes"]

    @property
    def config(self) -> dict:
        return self.read_json("config.json")

    def load_model(self, unsafe: bool = False):
        """Load model.keras in Keras' safe mode: a model that carries code (a Lambda layer) is refused
        unless `unsafe` (the user trusts its source)."""
        return load_keras_model(self.model_path, unsafe)


def load_keras_model(path: Path, unsafe: bool = False):
    """A `.keras` file in Keras' safe mode; code inside is refused with an explanation unless `unsafe`."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise UserError(f"{path} could not be read as a Keras model ({str(exc).splitlines()[0]}).") from None
        raise UserError(
            f"{path} contains Python code (a Lambda layer or similar) that could run anything, so inceptune "
            "refuses to load it; pass --unsafe only if you trust its source."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} could not be read as a Keras model ({exc}).") from None
